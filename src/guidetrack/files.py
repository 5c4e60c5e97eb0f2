"""Writing files so that a reader sees the old file or the whole new one, never a part."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: Path, mode: int | None = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without an error, it becomes
    `path` in one rename. On an error or an interrupt it is removed and `path` is untouched.
    `mode` None keeps the temporary file's private mode (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(handle)
    temp = Path(name)
    try:
        yield temp
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes, read in blocks (a voice model is tens of MB)."""
    with open(path, "rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


def write_atomically(path: Path, data: bytes, mode: int | None = 0o644) -> None:
    with replacing(path, mode) as temp:
        temp.write_bytes(data)
