"""PCM blocks -> MP3 file: streamed to ffmpeg, tagged with mutagen, renamed into place.

The output is written to a temporary file beside the target and renamed only when
complete, so an interrupted render never leaves a broken file at the output path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EncodeError
from .mix import to_pcm16
from .units import CHANNELS, SAMPLE_RATE

BITRATE = "128k"
PIPE_BYTES = 1 << 20  # 1 MiB, the default Linux maximum: ~6 s of PCM


@dataclass(frozen=True)
class Tags:
    title: str
    artist: str
    album: str
    comment: str


def ffmpeg_path() -> str:
    found = shutil.which("ffmpeg")
    if not found:
        raise EncodeError("ffmpeg is not installed: apt-get install ffmpeg (scripts/guidetrack does it for you)")
    return found


def encoder_command(target: str) -> list[str]:
    """ffmpeg reading raw PCM on stdin, writing an untagged, bit-exact MP3 to `target`."""
    return [
        ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "s16le", "-ar", str(SAMPLE_RATE), "-ac", str(CHANNELS), "-i", "pipe:0",
        "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact",
        "-c:a", "libmp3lame", "-b:a", BITRATE, "-id3v2_version", "0", "-write_id3v1", "0",
        "-f", "mp3", target,
    ]


def write_tags(path: Path, tags: Tags) -> None:
    from mutagen.id3 import COMM, ID3, TALB, TIT2, TPE1

    id3 = ID3()
    id3.add(TIT2(encoding=3, text=tags.title))
    id3.add(TPE1(encoding=3, text=tags.artist))
    id3.add(TALB(encoding=3, text=tags.album))
    id3.add(COMM(encoding=3, lang="eng", desc="", text=tags.comment))
    id3.save(str(path), v2_version=4)


def _widen_pipe(stream) -> None:
    """Let the mix run a block or two ahead of the encoder (Linux; elsewhere a no-op)."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except (ImportError, OSError):
        pass


def encode(blocks: Iterable[np.ndarray], out: Path, tags: Tags) -> int:
    """Stream `blocks` into `out` as a tagged MP3. Returns the number of samples written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(handle)
    temp = Path(temp_name)
    command = encoder_command(str(temp))
    written = 0
    try:
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=errors)
            _widen_pipe(process.stdin)
            try:
                assert process.stdin is not None
                for block in blocks:
                    process.stdin.write(to_pcm16(block))
                    written += len(block)
                process.stdin.close()
                code = process.wait()
            except BrokenPipeError:
                code = process.wait()
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            if code != 0:
                errors.seek(0)
                raise EncodeError(f"ffmpeg failed with exit code {code}", command,
                                  errors.read().decode("utf-8", "replace"))
        write_tags(temp, tags)
        os.chmod(temp, 0o644)
        os.replace(temp, out)
    finally:
        temp.unlink(missing_ok=True)
    return written
