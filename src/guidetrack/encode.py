"""PCM blocks -> an audio file: measured, streamed to ffmpeg, tagged with mutagen, renamed into place.

Loudness is normalised: ffmpeg's ITU-R BS.1770 meter (the ebur128 filter) measures the mix,
then the encoding pass applies the gain that reaches the target and a lookahead limiter that
keeps the true peak under -1 dBTP (see `encode` for what the limiter and codec take away). The output is written to a
temporary file beside the target and renamed only when complete, so an interrupted render
never leaves a broken file at the output path.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EncodeError
from .files import replacing
from .units import CHANNELS, SAMPLE_RATE, timestamp

PIPE_BYTES = 1 << 20  # 1 MiB, the default Linux maximum: ~3 s of float PCM
PEAK_LIMIT_DB = -2.0  # the limiter's sample-peak ceiling: 1 dB below -1 dBTP for inter-sample and codec overshoot
MAX_GAIN_DB = 30.0  # a near-silent mix is not blown up further than this
LOUDNESS_TOLERANCE = 0.15  # LU: a lossy file further than this from the target is made again
EXCERPT_BLOCKS = 32  # blocks of the mix, spread through it, encoded alone to learn what the codec does
FORMATS = {  # name -> (file suffix, ffmpeg codec, ffmpeg muxer)
    "mp3": (".mp3", "libmp3lame", "mp3"),
    "wav": (".wav", "pcm_s16le", "wav"),
    "opus": (".opus", "libopus", "ogg"),
    "m4a": (".m4a", "aac", "ipod"),
}


@dataclass(frozen=True)
class Output:
    """How the finished file is made. Every field changes the bytes written."""

    format: str = "mp3"
    bitrate: str = "128k"  # constant bitrate for mp3, opus and m4a
    quality: int | None = None  # mp3 VBR quality 0 (best) .. 9 instead of a bitrate
    channels: int = 2
    sample_rate: int = SAMPLE_RATE  # opus is always 48 kHz
    loudness: float | None = None  # integrated LUFS; None: -16 stereo, -19 mono (podcast norms)

    @property
    def suffix(self) -> str:
        return FORMATS[self.format][0]

    @property
    def rate(self) -> int:
        return 48_000 if self.format == "opus" else self.sample_rate

    @property
    def target_lufs(self) -> float:
        if self.loudness is not None:
            return self.loudness
        return -16.0 if self.channels == 2 else -19.0


@dataclass(frozen=True)
class Chapter:
    title: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Tags:
    title: str
    artist: str
    album: str
    comment: str
    chapters: tuple[Chapter, ...] = ()
    cover: bytes = b""  # PNG or JPEG
    cover_mime: str = "image/png"


def ffmpeg_path() -> str:
    found = shutil.which("ffmpeg")
    if not found:
        raise EncodeError("ffmpeg is not installed: apt-get install ffmpeg (scripts/guidetrack does it for you)")
    return found


_INPUT = ["-f", "f32le", "-ar", str(SAMPLE_RATE), "-ac", str(CHANNELS), "-i", "pipe:0"]


def _format_filter(output: "Output") -> str:
    """The output's sample rate and channels."""
    layout = "mono" if output.channels == 1 else "stereo"
    return f"aformat=sample_rates={output.rate}:channel_layouts={layout}"


def _level_chain(output: "Output", gain_db: float) -> str:
    """The output's channels and rate, the gain, then a lookahead limiter, last, so it sees the
    samples as they are written. latency=1 compensates the lookahead: every sample stays where
    the plan put it."""
    limit = 10 ** (PEAK_LIMIT_DB / 20)
    return f"{_format_filter(output)},volume={gain_db:.4f}dB,alimiter=limit={limit:.4f}:level=0:latency=1"


def encoder_command(target: str, output: Output = Output(), gain_db: float = 0.0) -> list[str]:
    """ffmpeg reading float PCM on stdin, writing an untagged, bit-exact file to `target`."""
    _, codec, muxer = FORMATS[output.format]
    quality = (["-q:a", str(output.quality)] if output.quality is not None and output.format == "mp3"
               else [] if output.format == "wav" else ["-b:a", output.bitrate])
    extra = {"mp3": ["-id3v2_version", "0", "-write_id3v1", "0"], "m4a": ["-movflags", "+faststart"]}
    return [
        ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *_INPUT,
        "-af", _level_chain(output, gain_db),
        "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact",
        "-c:a", codec, *quality, *extra.get(output.format, []), "-f", muxer, target,
    ]


# ITU-R BS.1770 loudness (gated) by ffmpeg's ebur128 meter. Its summary rounds to 0.1 LU; the
# running integrated value it attaches to every frame has three decimals, so that is printed.
METER = "ebur128=framelog=verbose:peak=sample:metadata=1,ametadata=mode=print:key=lavfi.r128.I"
SILENT_LUFS = -70.0  # the meter's absolute gate: a mix this quiet has no loudness to normalise


def _readings(report: str, command: list[str]) -> tuple[float, float]:
    """(integrated LUFS, sample peak dBFS) from the meter's report; silence reads -70 LUFS."""
    at = report.rfind("lavfi.r128.I=")
    peak = re.findall(r"Peak:\s+(-?[\d.]+|-inf) dBFS", report)
    if at < 0 or not peak:
        raise EncodeError("ffmpeg's loudness meter gave no result", command, report)
    loudness = float(report[at + len("lavfi.r128.I="):].split(None, 1)[0])
    return max(loudness, SILENT_LUFS), float(peak[-1]) if peak[-1] != "-inf" else -120.0


def measure_loudness(blocks: Iterable[np.ndarray], output: Output = Output(),
                     gain_db: float | None = None) -> tuple[float, float]:
    """(integrated loudness in LUFS, sample peak in dBFS) of the blocks as they will be written:
    at the output's rate and channels, and through the gain and limiter when `gain_db` is given."""
    chain = _format_filter(output) if gain_db is None else _level_chain(output, gain_db)
    command = [ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "info", *_INPUT,
               "-af", f"{chain},{METER}", "-f", "null", "-"]
    _, report = _stream(command, blocks)
    return _readings(report, command)


def measure_file_loudness(path: Path, output: Output = Output()) -> float:
    """Integrated loudness (LUFS) of an encoded file, decoded by ffmpeg."""
    command = [ffmpeg_path(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", "-i", str(path),
               "-af", f"{_format_filter(output)},{METER}", "-f", "null", "-"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise EncodeError("ffmpeg could not measure the encoded file", command, result.stderr)
    return _readings(result.stderr, command)[0]


class _Sample:
    """Passes blocks through, keeping every n-th of them, n doubling as the mix goes on, so that
    between EXCERPT_BLOCKS and twice that, spread evenly through the whole mix, are kept."""

    def __init__(self, blocks: Iterable[np.ndarray]):
        self.blocks = blocks
        self.every = 1
        self.kept_blocks: dict[int, np.ndarray] = {}

    def __iter__(self) -> Iterator[np.ndarray]:
        for index, block in enumerate(self.blocks):
            if index % self.every == 0:
                self.kept_blocks[index] = block
                if len(self.kept_blocks) >= 2 * EXCERPT_BLOCKS:
                    self.every *= 2
                    self.kept_blocks = {i: b for i, b in self.kept_blocks.items() if i % self.every == 0}
            yield block

    def kept(self) -> list[np.ndarray]:
        return [self.kept_blocks[i] for i in sorted(self.kept_blocks)]


def normalising_gain(blocks: Iterable[np.ndarray], output: Output) -> tuple[float, bool]:
    """The gain (dB) that brings the mix to the output's loudness target, from one measuring
    pass over the whole mix; and whether part of it is a prediction (see `predicted_losses`)
    that the finished file should confirm."""
    sample = _Sample(blocks)
    loudness, peak = measure_loudness(sample, output)
    excerpt = sample.kept()
    gain = min(output.target_lufs - loudness, MAX_GAIN_DB)
    limited = peak + gain > PEAK_LIMIT_DB
    if loudness <= SILENT_LUFS or (output.format == "wav" and not limited):
        return gain, False  # nothing will take loudness away: the measurement is exact
    return min(gain + predicted_losses(excerpt, output, gain, limited), MAX_GAIN_DB), True


def predicted_losses(excerpt: list[np.ndarray], output: Output, gain_db: float, limited: bool) -> float:
    """The loudness (LU) the limiter and a lossy codec will take from the mix, learnt from an
    excerpt of it: measured plain, through the gain and limiter, and encoded."""
    plain, _ = measure_loudness(excerpt, output)
    if plain <= SILENT_LUFS:
        return 0.0
    loss = 0.0
    if limited:
        through, _ = measure_loudness(excerpt, output, gain_db)
        loss = plain + gain_db - through
    if output.format != "wav":
        # the limiter takes more as the gain grows, so settle: encode, measure, correct, twice at most
        with tempfile.TemporaryDirectory(prefix="guidetrack-") as folder:
            sample = Path(folder) / f"excerpt{output.suffix}"
            for _ in range(2):
                _stream(encoder_command(str(sample), output, gain_db + loss), excerpt)
                correction = plain + gain_db - measure_file_loudness(sample, output)
                loss += correction
                if abs(correction) < LOUDNESS_TOLERANCE / 3:
                    break
    return loss


def _stream(command: list[str], blocks: Iterable[np.ndarray]) -> tuple[int, str]:
    """Feed float32 blocks to ffmpeg's stdin; returns (samples written, its stderr). Raises EncodeError."""
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    _widen_pipe(process.stdin)
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
    reader.start()
    written = 0
    try:
        assert process.stdin is not None
        try:
            for block in blocks:
                process.stdin.write(np.ascontiguousarray(block, dtype="<f4").tobytes())
                written += len(block)
            process.stdin.close()
        except BrokenPipeError:
            pass
        code = process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join()
    report = b"".join(errors).decode("utf-8", "replace")
    if code != 0:
        raise EncodeError(f"ffmpeg failed with exit code {code}", command, report)
    return written, report


def _id3_frames(tags: Tags) -> list:
    from mutagen.id3 import APIC, CHAP, COMM, CTOC, TALB, TIT2, TPE1, CTOCFlags

    frames = [TIT2(encoding=3, text=tags.title), TPE1(encoding=3, text=tags.artist),
              TALB(encoding=3, text=tags.album), COMM(encoding=3, lang="eng", desc="", text=tags.comment)]
    if tags.chapters:
        ids = [f"chp{i}" for i in range(len(tags.chapters))]
        frames.append(CTOC(element_id="toc", flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED,
                           child_element_ids=ids, sub_frames=[TIT2(encoding=3, text=tags.title)]))
        frames += [CHAP(element_id=i, start_time=c.start_ms, end_time=c.end_ms,
                        start_offset=0xFFFFFFFF, end_offset=0xFFFFFFFF, sub_frames=[TIT2(encoding=3, text=c.title)])
                   for i, c in zip(ids, tags.chapters)]
    if tags.cover:
        frames.append(APIC(encoding=3, mime=tags.cover_mime, type=3, desc="Cover", data=tags.cover))
    return frames


def write_tags(path: Path, tags: Tags, output: Output = Output()) -> None:
    """Title, artist, album, comment, chapters and cover, in the format's own kind of tags."""
    if output.format in ("mp3", "wav"):
        from mutagen.id3 import ID3
        from mutagen.wave import WAVE

        if output.format == "mp3":
            id3 = ID3()
            for frame in _id3_frames(tags):
                id3.add(frame)
            id3.save(str(path), v2_version=4, padding=lambda info: 0)
        else:
            wave = WAVE(str(path))
            wave.add_tags()
            for frame in _id3_frames(tags):
                wave.tags.add(frame)
            wave.save(v2_version=4, padding=lambda info: 0)
    elif output.format == "opus":
        import base64

        from mutagen.flac import Picture
        from mutagen.oggopus import OggOpus

        opus = OggOpus(str(path))
        opus.tags.clear()
        opus.tags.update({"TITLE": tags.title, "ARTIST": tags.artist, "ALBUM": tags.album, "COMMENT": tags.comment})
        for i, chapter in enumerate(tags.chapters, 1):  # the Vorbis comment chapter convention
            opus.tags[f"CHAPTER{i:03d}"] = timestamp(chapter.start_ms)
            opus.tags[f"CHAPTER{i:03d}NAME"] = chapter.title
        if tags.cover:
            picture = Picture()
            picture.type, picture.mime, picture.data = 3, tags.cover_mime, tags.cover
            opus.tags["METADATA_BLOCK_PICTURE"] = base64.b64encode(picture.write()).decode("ascii")
        opus.save(padding=lambda info: 0)
    else:
        from mutagen.mp4 import MP4, MP4Cover

        m4a = MP4(str(path))
        m4a.tags = m4a.tags if m4a.tags is not None else m4a.add_tags() or m4a.tags
        m4a.tags.update({"\xa9nam": tags.title, "\xa9ART": tags.artist, "\xa9alb": tags.album, "\xa9cmt": tags.comment})
        if tags.cover:
            kind = MP4Cover.FORMAT_PNG if tags.cover_mime == "image/png" else MP4Cover.FORMAT_JPEG
            m4a.tags["covr"] = [MP4Cover(tags.cover, imageformat=kind)]
        m4a.save(padding=lambda info: 0)


def _widen_pipe(stream) -> None:
    """Let the mix run a block or two ahead of the encoder (Linux; elsewhere a no-op)."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except (ImportError, OSError):
        pass


def encode(blocks: Callable[[], Iterable[np.ndarray]], out: Path, tags: Tags, output: Output = Output(),
           gain_db: float | None = None) -> tuple[int, float]:
    """Write the mix to `out`, normalised to the output's loudness target.

    `blocks` makes the mix afresh for each pass. Returns (samples written, gain applied in dB).
    A given `gain_db` was measured on an earlier, identical render, and is used as it is.
    Otherwise the mix is measured, what the limiter and codec take is learnt from an excerpt
    (about a minute, spread through the mix) and given back, and the finished file is measured
    to make sure (and encoded once more in the rare case it is still off).
    """
    predicted = False
    if gain_db is None:
        gain_db, predicted = normalising_gain(blocks(), output)
    with replacing(out) as temp:
        written, _ = _stream(encoder_command(str(temp), output, gain_db), blocks())
        if predicted:
            # the losses were predicted from an excerpt: make sure on the whole file
            miss = output.target_lufs - measure_file_loudness(temp, output)
            if LOUDNESS_TOLERANCE < abs(miss) < 20 and gain_db + miss <= MAX_GAIN_DB:
                gain_db += miss
                written, _ = _stream(encoder_command(str(temp), output, gain_db), blocks())
        write_tags(temp, tags, output)
    return written, gain_db
