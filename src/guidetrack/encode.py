"""PCM blocks -> an audio file: levelled, streamed to ffmpeg, measured, tagged with mutagen,
renamed into place.

The mix comes with the voice's clips as they are; a gain brings the voice to its loudness
target (see `loudness`), and a true-peak limiter (4x oversampled, so it sees the peaks between
samples too; see `truepeak`) holds the rare peaks under a ceiling, in this process and only where
a peak comes near it. The finished file is then measured
(speech loudness, programme loudness, loudness range, true peak) and, if the codec moved it off
the target or over -1 dBTP, made again with the gain or ceiling corrected by what was measured.
The output is written to a temporary file beside the target and renamed only when complete, so
an interrupted render never leaves a broken file at the output path. An MP3 encoded on every
core takes, from the file it replaces, the frames of every chunk whose samples did not change
(see `mp3.Earlier`): where they lie in it is kept in the cache (its `Layout`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from . import lame, mp3
from .errors import EncodeError
from .ffmpeg import ffmpeg_path, run
from .files import checked_json, intact_json, replacing, sha256_of, temporary_folder, write_atomically
from .loudness import Figures, MeasuredAsWritten, measure_file, target_for
from .report import SILENT, Progress
from .truepeak import Limiter
from .units import CHANNELS, SAMPLE_RATE, Samples, timestamp

log = logging.getLogger(__name__)
TRUE_PEAK_LIMIT = -1.0  # dBTP: the most a finished file may read (the podcast and streaming norm)
CEILING_DB = -1.2  # the limiter's first true-peak ceiling: a little room for what a lossy codec adds
MAX_GAIN_DB = 40.0  # a near-silent voice is not blown up further than this
LOUDNESS_TOLERANCE = 0.15  # LU: a file further than this off the voice's target is made again
PROMISE = 0.5  # LU: a file further off than this, after every try, is reported
MAX_ENCODES = 3  # the first encode, and at most two corrections
class Format(StrEnum):
    MP3 = "mp3"
    WAV = "wav"
    OPUS = "opus"  # Ogg Opus
    M4A = "m4a"  # AAC in MP4


FORMATS: dict[Format, tuple[str, str, str, str]] = {  # -> (file suffix, ffmpeg codec, ffmpeg muxer, MIME type)
    Format.MP3: (".mp3", "libmp3lame", "mp3", "audio/mpeg"),
    Format.WAV: (".wav", "pcm_s16le", "wav", "audio/wav"),
    Format.OPUS: (".opus", "libopus", "ogg", "audio/ogg"),
    Format.M4A: (".m4a", "aac", "ipod", "audio/mp4"),
}
ENCODER_OPTIONS: dict[Format, list[str]] = {  # what else each format's encoder is told
    Format.MP3: ["-id3v2_version", "0", "-write_id3v1", "0"],  # tags are mutagen's
    Format.WAV: [],
    Format.OPUS: [],
    Format.M4A: ["-movflags", "+faststart"],  # the index first: players start before the whole file is there
}


@dataclass(frozen=True)
class Output:
    """How the finished file is made. Every field changes the bytes written."""

    format: Format = Format.MP3
    bitrate: str = "128k"  # constant bitrate for mp3, opus and m4a
    quality: int | None = None  # mp3 VBR quality 0 (best) .. 9 instead of a bitrate
    channels: int = 2
    sample_rate: int | None = None  # None: 44.1 kHz, or the loudness preset's; opus is always 48 kHz
    loudness: float | str | None = None  # the voice's LUFS or a preset's name; None: the script's, or podcast

    def __post_init__(self) -> None:
        object.__setattr__(self, "format", Format(self.format))  # "mp3" given as text is the same format

    def cache_key(self) -> dict[str, Any]:
        return {"format": self.format.value, "bitrate": self.bitrate, "quality": self.quality,
                "channels": self.channels, "sample_rate": self.sample_rate, "loudness": self.loudness}

    @property
    def suffix(self) -> str:
        return FORMATS[self.format][0]

    @property
    def rate(self) -> int:
        if self.format is Format.OPUS:
            return 48_000
        if self.sample_rate is not None:
            return self.sample_rate
        return target_for(self.loudness, self.channels).sample_rate or SAMPLE_RATE

    @property
    def target_lufs(self) -> float:
        """The voice's loudness in the finished file."""
        return target_for(self.loudness, self.channels).speech_lufs

    def for_script(self, loudness: float | str | None) -> Output:
        """These settings for a script that asks for `loudness`: the command line's, if it gave
        one, wins; the target's sample rate is fixed here, so that it is part of the settings."""
        from dataclasses import replace

        chosen = replace(self, loudness=self.loudness if self.loudness is not None else loudness)
        return replace(chosen, sample_rate=chosen.rate)


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


def codec_loss(output: Output) -> float:
    """What the codec is known to take from the voice's loudness (LU), given back in the first
    encode's gain; the finished file is measured all the same. Measured on espeak-ng's voice:
    LAME at a constant bitrate takes 0.45 LU up to 160 kbit/s and 0.27 above; AAC 0.07; LAME's
    VBR, Opus and WAV nothing measurable (tests/test_loudness.py checks these)."""
    if output.format is Format.MP3 and output.quality is None:
        digits = "".join(c for c in output.bitrate if c.isdigit())
        return 0.27 if digits and int(digits) > 160 else 0.45
    return 0.07 if output.format is Format.M4A else 0.0


_INPUT = ["-f", "f32le", "-ar", str(SAMPLE_RATE), "-ac", str(CHANNELS), "-i", "pipe:0"]


def format_chain(output: Output = Output()) -> str:
    """The filter taking the mix (levelled and limited: see `truepeak.Limiter`) to the output's
    channels and rate. To mono: the mean of the two channels, as `loudness.as_played` reads it
    (ffmpeg's own downmix would be 3 dB louder); a mean's true peak is never over its channels'."""
    rate = output.rate
    if output.channels == 1:
        return f"pan=mono|c0=0.5*c0+0.5*c1,aformat=sample_fmts=flt:sample_rates={rate}:channel_layouts=mono"
    return f"aformat=sample_fmts=flt:sample_rates={rate}:channel_layouts=stereo"


def _codec_options(output: Output) -> list[str]:
    _, codec, _, _ = FORMATS[output.format]
    quality = (["-q:a", str(output.quality)] if output.quality is not None and output.format is Format.MP3
               else [] if output.format is Format.WAV else ["-b:a", output.bitrate])
    return ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact", "-c:a", codec, *quality,
            *ENCODER_OPTIONS[output.format]]


def encoder_command(target: str, output: Output = Output()) -> list[str]:
    """ffmpeg reading the mix's float PCM on stdin, writing an untagged, bit-exact file in the
    output's format, channels and rate to `target`."""
    return [ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *_INPUT,
            "-af", format_chain(output), *_codec_options(output), "-f", FORMATS[output.format][2], target]


def chunk_command(target: str, output: Output = Output()) -> list[str]:
    """One ffmpeg encoding a chunk of the mix as MP3 without the bit reservoir (see `mp3`)."""
    return [*encoder_command(target, output)[:-3], "-reservoir", "0", "-f", "mp3", target]


BLOCK_FED = SAMPLE_RATE * 2  # samples written to an encoder at a time
MAX_ENCODERS = 8  # a render's encoders at most: each holds a minute of the mix


def in_chunks(output: Output, samples: Samples) -> bool:
    """Whether this output is encoded on every core: MP3 at the mix's own rate, longer than one
    chunk (see `mp3`); a shorter one keeps LAME's bit reservoir."""
    return output.format is Format.MP3 and output.rate == SAMPLE_RATE and len(mp3.chunks(samples)) > 1


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _kbps(bitrate: str) -> int | None:
    """A bitrate as ffmpeg reads it ("128k", "128000"), in kbit/s; None if it is not so simple."""
    match = re.fullmatch(r"(\d+)(k?)", bitrate.strip().lower())
    if not match:
        return None
    return int(match.group(1)) if match.group(2) else int(match.group(1)) // 1000


def _settings(output: Output) -> bytes | None:
    """Everything that changes a chunk's frames besides its samples, when its encoder is the
    libmp3lame in this process (an ffmpeg's frames are the same, but not its Info frame): the
    output's settings, what LAME makes of a fixed sound at them (so another build of it, or
    another way of setting it up, is told apart), and the join's own format. None when they
    cannot be told, and nothing is taken from an earlier file."""
    in_process = lame.encoder()
    kbps = _kbps(output.bitrate)
    if in_process is None or (output.quality is None and kbps is None):
        return None
    made = in_process.fingerprint(output.channels, output.rate, kbps, output.quality)
    return json.dumps({"encoder": f"libmp3lame {in_process.version}", "makes": made, "join": mp3.JOIN_FORMAT,
                       **output.cache_key()}, sort_keys=True).encode()


def _encode_mp3(blocks: Iterable[np.ndarray], samples: Samples, temp: Path, output: Output, encoders: int,
                measure: MeasuredAsWritten | None = None, earlier: mp3.Earlier | None = None) -> mp3.Layout:
    """The mix as MP3 in chunks, one encoder a core (LAME in this process, see `lame`, or else an
    ffmpeg each), joined into `temp` (and handed to `measure`); a chunk `earlier` holds is taken
    from it. Where each chunk's frames lie in `temp` is returned."""
    in_process = lame.encoder()
    kbps = _kbps(output.bitrate)
    settings = _settings(output)

    def encode_chunk(audio: np.ndarray) -> bytes:
        if in_process is not None and (output.quality is not None or kbps is not None):
            return in_process.encode(audio, output.channels, output.rate, kbps, output.quality)
        with temporary_folder("chunk") as folder:
            target = folder / "chunk.mp3"
            pieces = (audio[at: at + BLOCK_FED] for at in range(0, len(audio), BLOCK_FED))  # no whole copy
            run([chunk_command(str(target), output)], pieces, what="the MP3 encoder")
            return target.read_bytes()

    try:
        with temp.open("wb") as out:
            return mp3.encode_parallel(blocks, samples, encode_chunk, encoders, out,
                                       listen=measure.write if measure is not None else None,
                                       settings=settings, earlier=earlier if settings is not None else None)
    except ValueError as err:  # the encoder made something the join does not recognise
        raise EncodeError(f"the MP3 chunks could not be joined: {err}") from None


LAYOUT_FORMAT = 1  # bump when what a kept layout holds changes


def _layout_json(layout: mp3.Layout, start: int, size: int) -> bytes:
    return checked_json({"format": LAYOUT_FORMAT, "start": start, "size": size,
                         "info": [layout.info, layout.info_digest],
                         "chunks": [[c.key, c.at, c.length, c.digest] for c in layout.chunks]})


def _read_layout(path: Path) -> tuple[mp3.Layout, int, int] | None:
    """(layout, where its Info frame starts, the file's size), as `_layout_json` kept them; None
    if missing, damaged or holding what no encode could have written."""
    def digest(value: Any) -> str:
        if not (isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)):
            raise ValueError("digest")
        return value

    def count(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError("count")
        return value

    try:
        body = intact_json(path.read_bytes(), ("format", "start", "size", "info", "chunks"))
        if body is None or body["format"] != LAYOUT_FORMAT:
            return None
        chunks = tuple(mp3.Placed(digest(key), count(at), count(length), digest(sha))
                       for key, at, length, sha in body["chunks"])
        layout = mp3.Layout(count(body["info"][0]), digest(body["info"][1]), chunks)
        start, size = count(body["start"]), count(body["size"])
        # the pieces follow one another from the Info frame (one frame) to the end of the file
        ends = [layout.info, *(c.at + c.length for c in chunks)]
        if not (0 < layout.info <= mp3.MAX_FRAME and all(c.at == end for c, end in zip(chunks, ends, strict=False))
                and start + ends[-1] == size):
            return None
        return layout, start, size
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


@contextmanager
def _earlier(out: Path, layout: Path | None) -> Iterator[mp3.Earlier | None]:
    """The file at `out`, open for the frames an encode may take from it, if `layout` tells
    where they lie in it and it is still the size it was written at."""
    kept = _read_layout(layout) if layout is not None else None
    if kept is None:
        yield None
        return
    try:  # not waiting on whatever may sit at the path now (a pipe): only a file is read
        source = os.fdopen(os.open(out, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb")
    except OSError:
        yield None
        return
    with source:
        found, start, size = kept
        status = os.fstat(source.fileno())
        yield mp3.Earlier(source, start, found) if stat.S_ISREG(status.st_mode) and status.st_size == size else None


def _id3_frames(tags: Tags) -> list[Any]:
    from mutagen.id3 import APIC, CHAP, COMM, CTOC, TALB, TIT2, TPE1, CTOCFlags

    frames: list[Any] = [TIT2(encoding=3, text=tags.title)]
    frames += [TPE1(encoding=3, text=tags.artist)] if tags.artist else []
    frames += [TALB(encoding=3, text=tags.album)] if tags.album else []
    frames += [COMM(encoding=3, lang="eng", desc="", text=tags.comment)] if tags.comment else []
    if tags.chapters:
        ids = [f"chp{i}" for i in range(len(tags.chapters))]
        frames.append(CTOC(element_id="toc", flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED,
                           child_element_ids=ids, sub_frames=[TIT2(encoding=3, text=tags.title)]))
        frames += [CHAP(element_id=i, start_time=c.start_ms, end_time=c.end_ms,
                        start_offset=0xFFFFFFFF, end_offset=0xFFFFFFFF, sub_frames=[TIT2(encoding=3, text=c.title)])
                   for i, c in zip(ids, tags.chapters, strict=True)]
    if tags.cover:
        frames.append(APIC(encoding=3, mime=tags.cover_mime, type=3, desc="Cover", data=tags.cover))
    return frames


def write_tags(path: Path, tags: Tags, output: Output = Output()) -> None:
    """Title, artist, album, comment, chapters and cover, in the format's own kind of tags."""
    from mutagen import MutagenError

    try:
        _write_tags(path, tags, output)
    except MutagenError as err:  # mutagen wraps the OSError (a full disk) in its own
        cause = err.__cause__ or err.__context__ or err
        raise EncodeError(f"cannot write the tags: {getattr(cause, 'strerror', None) or cause}") from None


def _write_tags(path: Path, tags: Tags, output: Output) -> None:
    if output.format in (Format.MP3, Format.WAV):
        from mutagen.id3 import ID3
        from mutagen.wave import WAVE

        if output.format is Format.MP3:
            id3 = ID3()
            for frame in _id3_frames(tags):
                id3.add(frame)
            id3.save(str(path), v2_version=4, padding=lambda info: 0)
        else:
            wave = WAVE(str(path))
            wave.add_tags()
            assert wave.tags is not None
            for frame in _id3_frames(tags):
                wave.tags.add(frame)
            wave.save(v2_version=4, padding=lambda info: 0)
    elif output.format is Format.OPUS:
        import base64

        from mutagen.flac import Picture
        from mutagen.oggopus import OggOpus

        opus = OggOpus(str(path))
        assert opus.tags is not None  # an Ogg Opus file always has its comment header
        opus.tags.clear()
        opus.tags.update({k: v for k, v in {"TITLE": tags.title, "ARTIST": tags.artist, "ALBUM": tags.album,
                                            "COMMENT": tags.comment}.items() if v})
        for i, chapter in enumerate(tags.chapters, 1):  # the Vorbis comment chapter convention
            opus.tags[f"CHAPTER{i:03d}"] = timestamp(chapter.start_ms)
            opus.tags[f"CHAPTER{i:03d}NAME"] = chapter.title
        if tags.cover:
            picture = Picture()
            picture.type, picture.mime, picture.data = 3, tags.cover_mime, tags.cover
            opus.tags["METADATA_BLOCK_PICTURE"] = base64.b64encode(picture.write()).decode("ascii")
        opus.save(padding=lambda info: 0)
    elif output.format is Format.M4A:
        from mutagen.mp4 import MP4, MP4Cover

        m4a = MP4(str(path))
        if m4a.tags is None:
            m4a.add_tags()
        assert m4a.tags is not None
        m4a.tags.update({k: v for k, v in {"\xa9nam": tags.title, "\xa9ART": tags.artist, "\xa9alb": tags.album,
                                           "\xa9cmt": tags.comment}.items() if v})
        if tags.cover:
            kind = MP4Cover.FORMAT_PNG if tags.cover_mime == "image/png" else MP4Cover.FORMAT_JPEG
            m4a.tags["covr"] = [MP4Cover(tags.cover, imageformat=kind)]
        m4a.save(padding=lambda info: 0)
    else:
        raise ValueError(f"no tags for the format {output.format}")


def _still_ours(temp: Path, encoded: os.stat_result) -> None:
    """Before a temporary file is renamed into place: it is still the file the encoder wrote
    (something may have removed it meanwhile, and tagging would then make a new, empty one)."""
    try:
        now = temp.stat()
    except OSError:
        now = None
    if now is None or now.st_ino != encoded.st_ino or now.st_dev != encoded.st_dev or \
            now.st_size < encoded.st_size // 2:
        raise EncodeError(f"the file being written for {temp.name} was removed or replaced while it was "
                          "written (another program cleaning the folder?); nothing was put in place")


@dataclass(frozen=True)
class Encoded:
    """What `encode` wrote, and what the file measures."""

    samples: Samples  # at SAMPLE_RATE, as mixed
    gain_db: float  # applied to the mix
    ceiling_db: float  # the limiter's true-peak ceiling
    figures: Figures  # measured on the finished file
    sha256: str  # of the audio as encoded, before its tags
    target_lufs: float  # what the voice was to measure
    encodes: int = 1  # how many times it was encoded
    kept: int = 0  # MP3 chunks (a minute each) taken unchanged from the file it replaced
    chunks: int = 0  # MP3 chunks in all, when it was encoded on every core

    @property
    def problems(self) -> list[str]:
        """Where the file misses the promise: the voice within 0.5 LU of its target, the true
        peak at or under -1 dBTP."""
        found = []
        speech = self.figures.speech_lufs
        if speech is not None and abs(speech - self.target_lufs) > PROMISE:
            found.append(f"the voice measures {speech:.1f} LUFS, not the {self.target_lufs:g} LUFS asked for")
        if self.figures.true_peak > TRUE_PEAK_LIMIT:
            found.append(f"the true peak measures {self.figures.true_peak:.2f} dBTP, over {TRUE_PEAK_LIMIT:g} dBTP")
        return found


def encode(blocks: Callable[[], Iterable[np.ndarray]], out: Path, tags: Tags, output: Output = Output(),
           gain_db: float = 0.0, spans: Sequence[tuple[Samples, Samples]] = (),
           ceiling_db: float = CEILING_DB, known: tuple[str, Figures] | None = None,
           beside: Mapping[Path, bytes] | None = None, progress: Progress = SILENT,
           samples: Samples | None = None, encoders: int | None = None, layout: Path | None = None) -> Encoded:
    """Write the mix to `out` with the voice at the output's loudness target.

    `blocks` makes the mix afresh for each pass; `gain_db` is the gain expected to bring the
    voice (which sounds in `spans`) to the target. The finished file is measured; if the voice
    is more than 0.15 LU off or the true peak over -1 dBTP (a lossy codec adds to peaks), it is
    made again with the gain and ceiling corrected, twice at most. `known` is (sha256, figures)
    of an earlier render: a file with the same bytes has the same figures, so it is not measured
    again. `beside` (path -> bytes: transcripts) are put in place with the audio (see `replacing`).
    Given the mix's length in `samples`, an MP3 is encoded on `encoders` cores (default: all of
    this process's, at most 8; see `mp3`), and `layout` is where this output's chunks are kept
    track of: the chunks whose samples are unchanged since the file at `out` was written are taken
    from it.
    """
    target = output.target_lufs
    written: mp3.Layout | None = None
    with _earlier(out, layout) as earlier, replacing(out, beside=beside) as temp:
        for attempt in range(1, MAX_ENCODES + 1):
            chunked = samples is not None and in_chunks(output, samples)
            measuring = chunked and (known is None or attempt > 1)  # measured as it is written
            progress.stage(("mixing, encoding and measuring" if measuring else "mixing and encoding") if attempt == 1
                           else "encoding again (the first missed the target)")
            started = time.perf_counter()
            limiter = Limiter(10 ** (gain_db / 20), 10 ** (ceiling_db / 20))
            measured: Figures | None = None
            if samples is not None and chunked:
                # measured as it is written, unless an earlier render of these very settings was
                measure = MeasuredAsWritten(samples, spans, output.channels, mp3.DECODER_START) \
                    if measuring else None
                if earlier is not None:
                    earlier.reused = 0  # counted for the last encode, the one kept
                try:
                    written = _encode_mp3(limiter(blocks()), samples, temp, output,
                                          max(1, min(encoders or cores(), MAX_ENCODERS)), measure, earlier)
                    measured = measure.figures() if measure is not None else None
                finally:
                    if measure is not None and measured is None:
                        measure.abort()
                samples_written = samples
            else:
                samples_written, _ = run([encoder_command(str(temp), output)], limiter(blocks()))
            log.debug("limited %d samples to a true peak of %.2f dB", limiter.limited, ceiling_db)
            log.debug("mixed, encoded and measured in %.2f s", time.perf_counter() - started)
            digest = sha256_of(temp)
            if measured is not None:
                figures = measured
            elif known is not None and known[0] == digest:
                figures = known[1]
            else:
                progress.stage("measuring the finished file")
                started = time.perf_counter()
                figures = measure_file(temp, spans, output.channels, output.rate)
                log.debug("measured in %.2f s: %s", time.perf_counter() - started, figures)
            miss = target - figures.speech_lufs if figures.speech_lufs is not None else 0.0
            over = figures.true_peak - TRUE_PEAK_LIMIT
            if attempt == MAX_ENCODES or (abs(miss) <= LOUDNESS_TOLERANCE and over <= 0):
                break
            gain_db = min(gain_db + miss, MAX_GAIN_DB)
            if over > 0:
                ceiling_db -= over + 0.1
        written_as = temp.stat()
        try:
            write_tags(temp, tags, output)
        except EncodeError as err:
            raise EncodeError(f"{out}: {err}; the file was not written") from None
        _still_ours(temp, written_as)
        tagged = temp.stat().st_size
    if layout is not None:
        _keep_layout(layout, written if chunked else None, tagged - written_as.st_size, tagged)
    kept = earlier.reused if earlier is not None else 0
    return Encoded(samples_written, gain_db, ceiling_db, figures, digest, target, attempt, kept,
                   len(written.chunks) if written is not None and chunked else 0)


def _keep_layout(path: Path, layout: mp3.Layout | None, start: int, size: int) -> None:
    """Keep where the chunks lie in the file just put in place; or, for a file made otherwise,
    forget what was kept for the one it replaced."""
    try:
        if layout is not None and layout.chunks and layout.chunks[0].key:
            write_atomically(path, _layout_json(layout, start, size))
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only or full cache: the next encode makes every chunk
