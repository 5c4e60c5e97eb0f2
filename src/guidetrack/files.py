"""Writing files so that a reader sees the old file or the whole new one, never a part."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


PART = ".part"  # the suffix of a file being written


@contextmanager
def replacing(path: Path, mode: int | None = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without an error, it becomes
    `path` in one rename. On an error or an interrupt it is removed and `path` is untouched.
    `mode` None keeps the temporary file's private mode (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # the writer's pid is in the name, so that a cleaner can tell a live writer's file from litter
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=PART)
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


def writer_alive(temp: Path) -> bool:
    """Whether the process that is writing `temp` (a `replacing` file, named
    `.NAME.PID.RANDOM.part`) still runs. A name without a pid is an old one's: not alive."""
    parts = temp.name.split(".")
    pid = parts[-3] if len(parts) >= 4 else ""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it runs, as another user
    return True


def remove_stale_parts(folder: Path, recursive: bool = False) -> int:
    """Remove the temporary files in `folder` whose writer is gone (killed mid-write); a
    live writer's, another render's or build's at this moment, are left alone."""
    removed = 0
    pattern = f".*{PART}"
    for temp in (folder.rglob(pattern) if recursive else folder.glob(pattern)):
        if temp.is_file() and not temp.is_symlink() and not writer_alive(temp):
            temp.unlink(missing_ok=True)
            removed += 1
    return removed
