"""Writing files so that a reader sees the old file or the whole new one, never a part."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

PART = ".part"  # the suffix of a file being written


@contextmanager
def replacing(path: Path, mode: int | None = 0o644, beside: Mapping[Path, bytes] | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without an error, it becomes
    `path` in one rename. On an error or an interrupt it is removed and `path` is untouched.
    `mode` None keeps the temporary file's private mode (0600).

    `beside` are files that belong with this one (a track's transcripts): they are written to
    temporary files first, the old ones are removed just before `path` is renamed into place and
    the new ones renamed just after, so no kill leaves a new file beside old companions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temps = [_temporary(path)]
    try:
        yield temps[0]
        companions = []
        for other, data in (beside or {}).items():
            temps.append(_temporary(other))
            temps[-1].write_bytes(data)
            companions.append((temps[-1], other))
        for temp, _ in [(temps[0], path)] + companions:
            if mode is not None:
                os.chmod(temp, mode)
        for _, other in companions:
            other.unlink(missing_ok=True)
        os.replace(temps[0], path)
        for temp, other in companions:
            os.replace(temp, other)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)


def _temporary(path: Path) -> Path:
    """An empty private file beside `path`, named `.NAME.PID.RANDOM.part`: the writer's pid is
    in the name so that a cleaner can tell a live writer's file from litter, and the name is cut
    so that it fits in 255 bytes however long the target's is."""
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{_short(path.name)}.{os.getpid()}.", suffix=PART)
    os.close(handle)
    return Path(name)


def sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes, read in blocks (a voice model is tens of MB)."""
    with open(path, "rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


def with_checksum(payload: bytes) -> bytes:
    """`payload` followed by its sha256: how a cache entry is kept (see `without_checksum`)."""
    return payload + hashlib.sha256(payload).digest()


def without_checksum(data: bytes) -> memoryview | None:
    """What `with_checksum` kept (without a copy), or None if it was damaged since."""
    if len(data) < 32 or hashlib.sha256(memoryview(data)[:-32]).digest() != data[-32:]:
        return None
    return memoryview(data)[:-32]


def checked_json(body: dict) -> bytes:
    """`body` as JSON with the sha256 of its fields under "check": how a small cache record is
    kept (see `intact_json`)."""
    return json.dumps({**body, "check": _json_check(body)}, sort_keys=True).encode()


def intact_json(data: bytes, keys: Iterable[str]) -> dict | None:
    """The fields `keys` of a record `checked_json` kept, or None if any is missing or the
    record was damaged (or forged) since."""
    try:
        found = json.loads(data)
        body = {key: found[key] for key in keys}
        return body if found.get("check") == _json_check(body) else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _json_check(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def write_atomically(path: Path, data: bytes, mode: int | None = 0o644) -> None:
    with replacing(path, mode) as temp:
        temp.write_bytes(data)


def write_new(path: Path, data: bytes, mode: int | None = 0o644) -> bool:
    """Write `path` whole, unless it exists: False then, and the file there is left as it is.
    Of several processes writing the same new file, the first one wins (a hard link cannot
    replace a file), so all of them can go on with the same content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _temporary(path)
    try:
        temp.write_bytes(data)
        if mode is not None:
            os.chmod(temp, mode)
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        return True
    finally:
        temp.unlink(missing_ok=True)


_OURS = re.compile(r"\..+\.(\d+)\.[a-z0-9_]{8}\.part")  # `replacing`'s names: .NAME.PID.RANDOM.part
STALE_SECONDS = 600  # untouched this long, and its writer gone: litter (a writer on another machine keeps writing)


def writer_alive(temp: Path) -> bool:
    """Whether the process writing `temp` (a `replacing` file) may still run: True for a name
    that is not ours, whose writer we cannot know."""
    found = _OURS.fullmatch(temp.name)
    if not found:
        return True
    return _alive(int(found.group(1)))  # True for another user's process, too


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


def _short(name: str, limit: int = 180) -> str:
    data = name.encode("utf-8")
    return name if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


_FOLDER = re.compile(r"guidetrack-[a-z]+-(\d+)-[a-z0-9_]{8}")  # `temporary_folder`'s names


@contextmanager
def temporary_folder(what: str) -> Iterator[Path]:
    """A private folder in $TMPDIR, removed when the block ends (on an error or a signal too).
    Its name carries the pid, so that a folder a killed process left (kill -9 cannot be
    caught) is recognised and removed by the next run: see `remove_stale_folders`."""
    with tempfile.TemporaryDirectory(prefix=f"guidetrack-{what}-{os.getpid()}-") as folder:
        yield Path(folder)


def remove_stale_folders() -> int:
    """Remove the temporary folders of guidetrack processes on this machine that are gone, and
    that nothing has changed for ten minutes (a process in another pid namespace may share $TMPDIR)."""
    removed = 0
    try:
        entries = list(Path(tempfile.gettempdir()).glob("guidetrack-*"))
    except OSError:
        return 0
    for folder in entries:
        found = _FOLDER.fullmatch(folder.name)
        try:
            if (not found or folder.is_symlink() or not folder.is_dir() or _alive(int(found.group(1)))
                    or time.time() - folder.stat().st_mtime < STALE_SECONDS):  # a pid of another namespace
                continue
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def check_writable(folder: Path) -> str:
    """Why files cannot be written in `folder` (created if missing), or "": a file is made and
    removed there, so a read-only disk or a missing permission shows before the long work."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=folder, prefix=f".probe.{os.getpid()}.", suffix=PART)
        os.close(handle)
        os.unlink(name)
    except OSError as err:
        return f"cannot write in {folder}: {err.strerror or err}"
    return ""
