"""What a library build wrote, as typed values: each class's track, the files it wrote, and the
manifest (build-manifest.json) that remembers them between builds.

A manifest is read back from disk, where anyone may have edited or damaged it: every entry is
checked field by field as it is read (`Entry.from_json`), and one that is not what a build writes
is dropped, neither trusted nor deleted.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .files import write_atomically

MANIFEST = "build-manifest.json"
FILE_KINDS = ("audio", "vtt", "srt", "chapters")  # what every build writes for a class


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _when(value: Any) -> str:
    """An ISO 8601 time with its zone, as builds write them."""
    if datetime.fromisoformat(_text(value)).tzinfo is None:
        raise ValueError("a time without its zone")
    return value


@dataclass(frozen=True)
class TrackChapter:
    title: str
    start: float  # seconds


@dataclass(frozen=True)
class Track:
    """One rendered class, as the catalog, the feed and the page show it."""

    title: str
    description: str
    author: str
    album: str
    variant: str
    language: str
    duration: float  # seconds
    chapters: tuple[TrackChapter, ...]
    transcript: tuple[str, ...]  # every utterance, in order
    loudness: dict[str, float | None] = field(default_factory=dict)  # target_lufs and the measured figures
    spoken: tuple[tuple[float, str], ...] = ()  # (start in seconds, text) of every utterance: the page's transcript
    props: tuple[str, ...] = ()
    level: str = ""
    order: int = 0  # the variant's place in its script: 0 is the main one

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "description": self.description, "author": self.author, "album": self.album,
                "variant": self.variant, "language": self.language, "duration": self.duration,
                "chapters": [{"title": c.title, "start": c.start} for c in self.chapters],
                "transcript": list(self.transcript), "loudness": dict(self.loudness),
                "spoken": [list(line) for line in self.spoken], "props": list(self.props), "level": self.level,
                "order": self.order}

    @classmethod
    def from_json(cls, data: Any) -> Track:
        """Raises ValueError (or KeyError, TypeError) for anything a build would not have written."""
        duration = _number(data["duration"])
        if duration < 0:
            raise ValueError("a negative duration")
        loudness = data.get("loudness")
        loudness = loudness if isinstance(loudness, dict) else {}  # only reported: missing is no harm
        return cls(
            title=_text(data["title"]), description=_text(data["description"]), author=_text(data["author"]),
            album=_text(data["album"]), variant=_text(data.get("variant") or ""),
            language=_text(data.get("language") or "en"), duration=duration,
            chapters=tuple(TrackChapter(_text(c["title"]), _number(c["start"])) for c in data["chapters"]),
            transcript=tuple(_text(line) for line in data["transcript"]),
            loudness={_text(k): None if v is None else _number(v) for k, v in loudness.items()},
            spoken=tuple((_number(start), _text(text)) for start, text in data.get("spoken") or ()),
            props=tuple(_text(p) for p in data.get("props") or ()), level=_text(data.get("level") or ""),
            order=int(_number(data.get("order") or 0)),
        )


@dataclass(frozen=True)
class StoredFile:
    """A file a build wrote into the output folder."""

    path: str  # relative to the output folder, with /
    bytes: int
    sha256: str
    stat: tuple[int, int, int] | None = None  # inode, size, mtime (ns) just after writing: unchanged files are not hashed again

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"path": self.path, "bytes": self.bytes, "sha256": self.sha256}
        if self.stat is not None:
            found["stat"] = list(self.stat)
        return found

    @classmethod
    def from_json(cls, data: Any) -> StoredFile:
        size = data["bytes"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError("a file size that is not a count of bytes")
        stat = data.get("stat")
        if stat is not None and not (isinstance(stat, list) and len(stat) == 3 and
                                     all(isinstance(v, int) and not isinstance(v, bool) for v in stat)):
            stat = None  # only ever a shortcut: without it, the file is hashed
        return cls(_text(data["path"]), size, _text(data["sha256"]), tuple(stat) if stat else None)


@dataclass(frozen=True)
class Entry:
    """What the manifest remembers of one output: how it was made and what it wrote."""

    fingerprint: str  # of everything that changes its sound or tags (see `build.plan_jobs`)
    script: str  # relative to the library
    variant: str
    files: dict[str, StoredFile]  # by kind: audio, vtt, srt, chapters
    track: Track
    built: str  # ISO 8601, UTC
    published: str  # when it first appeared: kept across rebuilds
    seconds: float = 0.0  # how long the render took

    def to_json(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "script": self.script, "variant": self.variant,
                "files": {kind: file.to_json() for kind, file in self.files.items()}, "track": self.track.to_json(),
                "built": self.built, "published": self.published, "seconds": self.seconds}

    @classmethod
    def from_json(cls, data: Any) -> Entry | None:
        """The entry, or None when it is not one a build could have written (damaged, edited, forged)."""
        try:
            files = {_text(kind): StoredFile.from_json(file) for kind, file in data["files"].items()}
            if not set(files) >= set(FILE_KINDS):
                return None
            return cls(_text(data["fingerprint"]), _text(data["script"]), _text(data.get("variant") or ""), files,
                       Track.from_json(data["track"]), _when(data["built"]), _when(data["published"]),
                       _seconds(data.get("seconds")))
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError):
            return None


def _seconds(value: Any) -> float:
    """How long a render took: reported only, so anything but a number reads as 0."""
    try:
        return _number(value)
    except ValueError:
        return 0.0


@dataclass
class Manifest:
    """build-manifest.json: every output of the last build into a folder, and its remembered settings."""

    outputs: dict[str, Entry] = field(default_factory=dict)  # by output name, e.g. evening/wind-down.mp3
    library: str | None = None  # which library the folder was built from (a hash, not a path)
    title: str | None = None  # --title, remembered
    base_url: str | None = None  # --base-url, remembered
    dropped: bool = False  # damaged entries were dropped when it was read: the next write leaves them out

    @classmethod
    def read(cls, out: Path) -> Manifest:
        """The manifest of the last build into `out`; an empty one if there is none, or it is unreadable."""
        try:
            data = json.loads((out / MANIFEST).read_text())
            if not (isinstance(data, dict) and data.get("guidetrack-build") == 1 and isinstance(data.get("outputs"), dict)):
                return cls()
        except (OSError, ValueError, RecursionError):
            return cls()
        outputs = {}
        for name, value in data["outputs"].items():
            entry = Entry.from_json(value)
            if entry is not None:
                outputs[name] = entry
        settings = {key: data.get(key) if isinstance(data.get(key), str) else None
                    for key in ("library", "title", "base_url")}  # remembered settings: text, or forgotten
        return cls(outputs, **settings, dropped=len(outputs) < len(data["outputs"]))

    def to_json(self) -> dict[str, Any]:
        return {"guidetrack-build": 1, "outputs": {name: entry.to_json() for name, entry in self.outputs.items()},
                "library": self.library, "title": self.title, "base_url": self.base_url}

    def write(self, out: Path) -> None:
        write_atomically(out / MANIFEST, (json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n").encode())
        self.dropped = False


@dataclass(frozen=True)
class JobResult:
    """What a worker hands back for one output: the files' bytes (it never writes to the output
    folder) and the track they make."""

    files: dict[str, bytes]  # by kind, as in Entry.files
    track: Track
    seconds: float
    worker: str  # host:pid, reported by `build --json`, never published
