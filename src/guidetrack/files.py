"""Writing files so that a reader sees the old file or the whole new one, never a part."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
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


_OURS = re.compile(r"\..+\.(\d+)\.[a-z0-9_]{8}\.part")  # `replacing`'s names: .NAME.PID.RANDOM.part
STALE_SECONDS = 600  # untouched this long, and its writer gone: litter (a writer on another machine keeps writing)


def writer_alive(temp: Path) -> bool:
    """Whether the process writing `temp` (a `replacing` file) may still run: True for a name
    that is not ours, whose writer we cannot know."""
    found = _OURS.fullmatch(temp.name)
    if not found:
        return True
    try:
        os.kill(int(found.group(1)), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it runs, as another user
    return True


def remove_stale_parts(folder: Path, recursive: bool = False) -> int:
    """Remove guidetrack's temporary files in `folder` whose writer is gone (killed mid-write)
    and that nothing has touched for ten minutes; a live writer's, another render's or build's
    at this moment, and other programs' files are left alone."""
    removed = 0
    pattern = f".*{PART}"
    now = time.time()
    for temp in (folder.rglob(pattern) if recursive else folder.glob(pattern)):
        try:
            if (temp.is_file() and not temp.is_symlink() and now - temp.stat().st_mtime > STALE_SECONDS
                    and not writer_alive(temp)):
                temp.unlink(missing_ok=True)
                removed += 1
        except OSError:
            continue
    return removed
