"""Loudness, anchored on the voice: targets, and ffmpeg's ITU-R BS.1770 meter.

The target (a number in LUFS, or a named preset) is the loudness of the speech itself: every
utterance at full level, from where it starts to sound to where it stops, joined end to end and
metered (BS.1770-4: K-weighted, 400 ms blocks, gated). guidetrack knows where every utterance
sits, so it reads the voice that way both before mixing, from the clips, and in the finished file.
Every other level (a bed, chimes, tones, an intro) is a loudness relative to the voice's, so
`level: -20` means 20 LU under the voice for brown noise, the ocean or a music file alike.

The meter is ffmpeg's `ebur128` filter. With metadata on, it hands back the loudness of every
400 ms block at 100 ms steps (three decimals); the gating (an absolute gate at -70 LUFS, a
relative one 10 LU under the mean of what passes it) is applied to those blocks here. The true
peak (4x oversampled) is read in this process, where the file is decoded for the voice's
stretches anyway, and only where it can be high (see `truepeak`).
"""

from __future__ import annotations

import math
import queue
import re
import threading
from array import array
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import EncodeError
from .ffmpeg import Feed, ffmpeg_path, read_pcm, run
from .truepeak import PeakMeter
from .units import CHANNELS, SAMPLE_RATE, Samples

BLOCK_STEP = SAMPLE_RATE // 10  # 100 ms: the meter's step between 400 ms blocks
BLOCK_LENGTH = 4 * BLOCK_STEP  # 400 ms: one gating block (BS.1770)
ABSOLUTE_GATE = -70.0  # LUFS
RELATIVE_GATE = -10.0  # LU under the ungated mean of the blocks above the absolute gate


# ---------------------------------------------------------------- targets


@dataclass(frozen=True)
class Preset:
    """A named target for `loudness:` in a script or `--loudness` on the command line."""

    name: str
    speech_lufs: float  # the voice's loudness in a stereo file
    mono_lufs: float  # ... and in a mono one (the same voice in one channel reads 3 LU lower)
    bed_db: float = -18.0  # a background's level under the voice when the script gives none
    sample_rate: int | None = None  # the output's sample rate, unless the command line gives one
    about: str = ""


PRESETS = {preset.name: preset for preset in (
    Preset("podcast", -16.0, -19.0, about="the podcast norm (Apple, Spotify, YouTube): -16 LUFS, -19 mono"),
    Preset("broadcast", -23.0, -23.0, about="EBU R128: -23 LUFS"),
    Preset("sleep", -22.0, -25.0, bed_db=-24.0,
           about="for listening in bed: the voice at -22 LUFS (-25 mono), a bed 24 LU under it unless set"),
    Preset("insight-timer", -16.0, -19.0, sample_rate=48_000,
           about="Insight Timer's upload guidance: MP3 at 128 kbit/s and 48 kHz, the voice at -16 LUFS"),
)}
DEFAULT_PRESET = "podcast"
LOUDEST, QUIETEST = -5.0, -70.0  # the targets that can be asked for, LUFS


@dataclass(frozen=True)
class Target:
    """What a render aims at: the voice's loudness, and a bed's level when the script gives none."""

    speech_lufs: float
    bed_db: float = -18.0
    sample_rate: int | None = None  # the preset's, if it names one


def target_for(loudness: float | str | None, channels: int) -> Target:
    """A number is the voice's loudness as it is, for stereo and mono alike; a preset's name
    gives its own figure for the channels; None is the podcast preset."""
    if isinstance(loudness, (int, float)):
        return Target(float(loudness))
    preset = PRESETS[loudness or DEFAULT_PRESET]
    return Target(preset.speech_lufs if channels == 2 else preset.mono_lufs, preset.bed_db, preset.sample_rate)


def parse_loudness(value: object) -> float | str:
    """`-16`, `"-16 LUFS"` or a preset's name. Raises ValueError with what to write instead."""
    from difflib import get_close_matches

    if isinstance(value, str) and value.strip().lower() in PRESETS:
        return value.strip().lower()
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*(?:LUFS|LKFS)?\s*", value, re.IGNORECASE)
        number = float(match.group(1)) if match else None
    if number is None:
        close = get_close_matches(str(value).lower(), list(PRESETS), n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"'{value}' is not a loudness{hint}: give LUFS like -16, or one of "
                         + ", ".join(PRESETS))
    if not math.isfinite(number) or not QUIETEST <= number <= LOUDEST:
        raise ValueError(f"loudness {value} is out of range: choose between {QUIETEST:g} and {LOUDEST:g} LUFS "
                         "(-16 is the podcast norm, -23 broadcast)")
    return number


# ---------------------------------------------------------------- the meter


@dataclass(frozen=True)
class Reading:
    """What the meter read from a stream."""

    blocks: np.ndarray  # the loudness (LUFS) of each 400 ms block, block k starting at k * 100 ms
    lra: float  # loudness range, LU (EBU Tech 3342), as the meter summarises it

    @property
    def integrated(self) -> float | None:
        """Integrated loudness (LUFS): every block, gated; None for silence."""
        return gated(self.blocks)


def gated(blocks: np.ndarray) -> float | None:
    """BS.1770-4 gating over block loudnesses: absolute, then relative; None if nothing is left."""
    blocks = blocks[blocks > ABSOLUTE_GATE]
    if not blocks.size:
        return None
    power = np.power(10.0, blocks / 10.0)
    relative = 10.0 * math.log10(float(np.mean(power))) + RELATIVE_GATE
    kept = power[blocks > relative]
    return 10.0 * math.log10(float(np.mean(kept)))


def k_weighting(rate: int = SAMPLE_RATE) -> tuple[tuple[list[float], list[float]], ...]:
    """BS.1770's K-weighting at `rate`, as ffmpeg's meter (and libebur128) makes it: a high shelf
    (+4 dB above about 1.7 kHz) and a high-pass at 38 Hz, each (numerator, denominator) taps."""
    k = math.tan(math.pi * 1681.974450955533 / rate)
    q = 0.7071752369554196
    vh = 10 ** (3.999843853973347 / 20)
    vb = vh ** 0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = ([(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0],
             [1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0])
    k = math.tan(math.pi * 38.13547087602444 / rate)
    q = 0.5003270373238773
    a0 = 1 + k / q + k * k
    high_pass = ([1.0, -2.0, 1.0], [1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0])
    return shelf, high_pass


K_TAIL = 4096  # samples of the K-weighting's impulse response kept: what follows holds under -190 dB of it
K_BLOCK = 4 * K_TAIL  # samples an FFT filters at a time, K_TAIL of them seen before


@lru_cache(maxsize=4)
def _k_response(rate: int) -> np.ndarray:
    """The K-weighting's frequency response on the grid of a K_BLOCK-point FFT: that of its
    impulse response's first K_TAIL samples (worked out from the filters' own response)."""
    size = 1 << 18
    z = np.exp(-1j * np.pi * np.arange(size // 2 + 1) / (size // 2))  # e^(-j omega) at every bin
    response = np.ones(len(z), complex)
    for numerator, denominator in k_weighting(rate):
        response *= np.polyval(numerator[::-1], z) / np.polyval(denominator[::-1], z)
    impulse = np.fft.irfft(response, size)[:K_TAIL]
    found = np.fft.rfft(impulse, K_BLOCK).astype(np.complex64)
    found.flags.writeable = False
    return found


def k_weighted_energy(audio: np.ndarray, frame: int, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The energy (sum of squares) of mono `audio` after K-weighting, in each whole `frame` of
    samples, as the filter run sample by sample from silence gives it (to 1e-6): FFTs of
    K_BLOCK samples, each giving a whole number of frames (overlap-save), a few dozen at once so
    that a long clip needs little memory. What `loudness_of_energy` reads."""
    step = (K_BLOCK - K_TAIL) // frame * frame  # the samples each FFT gives, after the K_TAIL it only sees
    frames = len(audio) // frame
    count = -(-frames * frame // step)
    padded = np.zeros(K_TAIL + count * step + K_BLOCK, np.float32)
    padded[K_TAIL: K_TAIL + frames * frame] = audio[: frames * frame]
    blocks = np.lib.stride_tricks.sliding_window_view(padded, K_BLOCK)[::step][:count]
    out = np.empty(count * (step // frame))
    for at in range(0, count, 32):
        spectra = np.fft.rfft(blocks[at: at + 32], axis=1)
        spectra *= _k_response(rate)
        weighted = np.fft.irfft(spectra, K_BLOCK, axis=1)[:, K_TAIL: K_TAIL + step]
        out[at * (step // frame): (at + len(weighted)) * (step // frame)] = \
            np.square(weighted, dtype=np.float64).reshape(-1, frame).sum(axis=1)
    return out[:frames]


def loudness_of_energy(energy: np.ndarray, frame: int) -> float | None:
    """The integrated loudness (LUFS) of a mono stream from its K-weighted energy in frames of
    `frame` samples (see `k_weighted_energy`), 400 ms blocks at 100 ms steps as the meter reads
    them, gated; None if nothing passes the gates."""
    per_block, per_step = BLOCK_LENGTH // frame, BLOCK_STEP // frame
    if per_block * frame != BLOCK_LENGTH or per_step * frame != BLOCK_STEP:
        raise ValueError(f"{frame} samples do not divide the meter's blocks")
    if len(energy) < per_block:
        return None
    running = np.concatenate([[0.0], np.cumsum(energy)])
    starts = np.arange(0, len(energy) - per_block + 1, per_step)
    mean = (running[starts + per_block] - running[starts]) / BLOCK_LENGTH
    with np.errstate(divide="ignore"):
        blocks = -0.691 + 10 * np.log10(np.maximum(mean, 0.0))
    return gated(blocks)


_BLOCK = "lavfi.r128.M="
_LRA = re.compile(r"LRA:\s+(-?[\d.]+) LU")
# blocks are 100 ms apart at any sample rate, so a file is read at its own rate and channels
LOUDNESS_ONLY = "ebur128=metadata=1,ametadata=mode=print:key=lavfi.r128.M"  # the true peak is `truepeak`'s


def _number(text: str, otherwise: float) -> float:
    """A reading; `otherwise` for nan or anything unreadable (the report is read to its end regardless)."""
    try:
        value = float(text.strip())
    except ValueError:
        return otherwise
    return otherwise if math.isnan(value) else value


class _Report:
    """Reads the meter's report as ffmpeg writes it (an 8-hour file's is a million lines, so it
    is never held whole): every block's loudness and the summary's range."""

    def __init__(self, stream):
        self.blocks = array("d")
        self.tail: list[str] = []  # the last lines: the summary, or what went wrong
        for raw in stream:
            line = raw.decode("utf-8", "replace")
            at = line.find(_BLOCK)
            if at >= 0:
                self.blocks.append(_number(line[at + len(_BLOCK):], -math.inf))
                continue
            self.tail = (self.tail + [line])[-60:]

    @property
    def text(self) -> str:
        return "".join(self.tail)

    def reading(self, command: list[str]) -> Reading:
        lra = _LRA.findall(self.text)
        if not self.blocks or not lra:
            raise EncodeError("ffmpeg's loudness meter gave no result", command, self.text)
        # the meter reads the block that ends 100 ms after each frame starts: the first three
        # cover time before the stream began, and are left out, so block k starts at k * 100 ms
        blocks = np.frombuffer(self.blocks, dtype=np.float64)[3:].copy()
        return Reading(blocks, float(lra[-1]))


def _run_meter(command: list[str], blocks: Iterable[np.ndarray] | None = None) -> Reading:
    """Run the meter, feeding it `blocks` of float32 PCM (or letting it read a file), and read its report."""
    _, report = run([command], blocks, read_last=_Report, what="ffmpeg's loudness meter")
    return report.reading(command)


def meter_file(path: Path) -> Reading:
    """Read an encoded file's loudness as a listener's player decodes it, at its own rate and
    channels (its true peak is read by `measure_file`)."""
    return _run_meter([ffmpeg_path(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info",
                       "-i", str(path), "-map", "0:a:0", "-af", LOUDNESS_ONLY, "-f", "null", "-"])


def meter_pcm(blocks: Iterable[np.ndarray], channels: int = CHANNELS, rate: int = SAMPLE_RATE) -> Reading:
    """Read the loudness of float32 PCM, shaped (n,) for mono or (n, channels); its true peak is
    not read (-inf)."""
    return _run_meter([ffmpeg_path(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info",
                       "-f", "f32le", "-ar", str(rate), "-ac", str(channels), "-i", "pipe:0",
                       "-af", LOUDNESS_ONLY, "-f", "null", "-"], blocks)


def as_played(audio: np.ndarray, channels: int = CHANNELS) -> np.ndarray:
    """A sound as a file of `channels` plays it: a mono clip sounds in both channels of a stereo
    file; a stereo sound is the mean of its channels in a mono one (as ffmpeg downmixes it), so
    a bed whose channels differ loses more than the voice does."""
    if channels == 1:
        return audio.mean(axis=1, dtype=np.float32) if audio.ndim == 2 else audio
    return audio if audio.ndim == 2 else np.repeat(audio[:, None], CHANNELS, axis=1)


def loudness_of(audio: np.ndarray, channels: int = CHANNELS) -> float | None:
    """The integrated loudness (LUFS) of a sound as a file of `channels` plays it (see
    `as_played`). None if it is silent or shorter than one 400 ms block."""
    if len(audio) < BLOCK_LENGTH:
        return None
    return meter_pcm([as_played(audio, channels)], channels).integrated


# ---------------------------------------------------------------- what a file measures


@dataclass(frozen=True)
class Figures:
    """A finished file's loudness, as measured on it."""

    speech_lufs: float | None  # the voice (None: the track has no speech at full level)
    integrated_lufs: float | None  # the whole programme (None: silence)
    lra: float  # loudness range, LU
    true_peak: float  # dBTP

    def to_json(self) -> dict:
        def rounded(value: float | None) -> float | None:
            return None if value is None or not math.isfinite(value) else round(value, 2)

        return {"speech_lufs": rounded(self.speech_lufs), "integrated_lufs": rounded(self.integrated_lufs),
                "loudness_range_lu": rounded(self.lra), "true_peak_dbtp": rounded(self.true_peak)}

    @classmethod
    def from_json(cls, data: dict) -> Figures:
        """Raises ValueError unless every figure is a number in a range a file can have."""
        def number(key: str, low: float, high: float) -> float:
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValueError(f"{key}: {value!r}")
            return float(value)

        def maybe(key: str, low: float, high: float) -> float | None:
            return None if data.get(key) is None else number(key, low, high)

        return cls(maybe("speech_lufs", -120, 10), maybe("integrated_lufs", -120, 10),
                   number("loudness_range_lu", 0, 100), number("true_peak_dbtp", -200, 30))

    def __str__(self) -> str:
        def show(value: float | None, unit: str) -> str:
            return "none" if value is None else f"{value:.1f} {unit}"

        return (f"speech {show(self.speech_lufs, 'LUFS')}, programme {show(self.integrated_lufs, 'LUFS')}, "
                f"range {self.lra:.1f} LU, true peak {self.true_peak:.1f} dBTP")


def measure_file(path: Path, spans: Sequence[tuple[Samples, Samples]], channels: int = CHANNELS,
                 rate: int = SAMPLE_RATE) -> Figures:
    """A finished file's figures, read as a player decodes it. Two ffmpeg processes at once: one
    meters the whole file (programme loudness and range); the other decodes it for this process,
    which reads its true peak (see `truepeak`) and cuts out the voice's stretches (`spans`, in
    samples at SAMPLE_RATE), which a third meters joined: the voice's loudness, as
    `mix.voice_loudness` reads it before the mix."""
    whole: list[Reading | BaseException] = []

    def meter_whole() -> None:
        try:
            whole.append(meter_file(path))
        except BaseException as err:  # handed to the caller below
            whole.append(err)

    thread = threading.Thread(target=meter_whole, daemon=True)
    thread.start()
    try:
        speech, peak = _speech_and_peak(_decoded(path, channels, rate), spans, channels, rate)
    finally:
        thread.join()
    if isinstance(whole[0], BaseException):
        raise whole[0]
    return _figures(speech, whole[0], peak)


def _figures(speech: float | None, whole: Reading, peak: float) -> Figures:
    return Figures(speech, whole.integrated, whole.lra, 20 * math.log10(peak) if peak > 0 else -math.inf)


class MeasuredAsWritten:
    """The figures of an MP3 read while it is written, from its audio frames as they come (see
    `mp3.encode_parallel`): one ffmpeg decodes them, meters the whole and hands the audio on, for
    the true peak and the voice's stretches, as `measure_file` reads them. Its samples are the
    ones a player decodes from the finished file (tests/test_mp3.py compares the figures); the
    track starts `start` samples into what the decoder gives (see `mp3.DECODER_START`).
    `abort` stops it, if the file is not finished."""

    def __init__(self, samples: Samples, spans: Sequence[tuple[Samples, Samples]], channels: int, start: int):
        trim = f"atrim=start_sample={start}:end_sample={start + samples}"  # the track, in what the decoder gives
        command = [ffmpeg_path(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", "-f", "mp3",
                   "-i", "pipe:0", "-filter_complex", f"[0:a]{trim},asplit=2[m][o];[m]{LOUDNESS_ONLY},anullsink",
                   "-map", "[o]", "-f", "f32le", "pipe:1"]
        self.decoder = Feed(command, read_last=_Report, what="ffmpeg decoding the MP3 to measure it")
        self.channels = channels
        self.result: list[tuple[float | None, float] | BaseException] = []
        self.thread = threading.Thread(target=self._read, args=(spans,), daemon=True)
        self.thread.start()
        # the frames are handed to the decoder by a thread of its own, so that the writer (the
        # mix's thread) need not wait for the decoder, unless it falls a few minutes behind
        self.frames: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self.feeder = threading.Thread(target=self._feed, daemon=True)
        self.feeder.start()

    def _feed(self) -> None:
        try:
            while (frames := self.frames.get()) is not None:
                self.decoder.write(frames)
        except Exception:  # the decoder stopped (or was stopped): figures() tells what went wrong
            while self.frames.get() is not None:  # the rest is let go, up to the end
                pass

    def _read(self, spans: Sequence[tuple[Samples, Samples]]) -> None:
        try:
            blocks = _pcm_blocks(self.decoder.output(_pcm_bytes(self.channels)), self.channels)
            self.result.append(_speech_and_peak(blocks, spans, self.channels, SAMPLE_RATE))
        except BaseException as err:  # handed on by figures(); the decoder must not wait for a reader
            self.result.append(err)
            self.decoder.process.kill()

    def write(self, frames: bytes) -> None:
        self.frames.put(frames)

    def figures(self) -> Figures:
        """Once every frame is written: the whole file's figures."""
        self.frames.put(None)
        self.feeder.join()
        try:
            report = self.decoder.finish()
        finally:
            self.thread.join()
        if isinstance(self.result[0], BaseException):
            raise self.result[0]
        speech, peak = self.result[0]
        return _figures(speech, report.reading(self.decoder.command), peak)

    def abort(self) -> None:
        """Stop: the decoder first, so that the threads writing to it and reading from it meet a
        closed pipe and end, and only then its pipes are closed."""
        if self.decoder.process.poll() is None:
            self.decoder.process.kill()
        self.frames.put(None)
        self.feeder.join()
        self.thread.join()
        self.decoder.kill()


def _speech_and_peak(blocks: Iterator[np.ndarray], spans: Sequence[tuple[Samples, Samples]], channels: int,
                     rate: int) -> tuple[float | None, float]:
    """From decoded audio: the voice's loudness (its stretches `spans` joined and metered; None
    without spans) and the true peak (linear) of the whole."""
    peak = PeakMeter()

    def seen() -> Iterator[np.ndarray]:
        for block in blocks:
            peak.add(block)
            yield block

    stream = seen()
    speech = meter_pcm(_cut(stream, spans, rate), channels, rate).integrated if spans else None
    for _ in stream:  # the rest, for its peak
        pass
    return speech, peak.close()


def _decoded(path: Path, channels: int, rate: int) -> Generator[np.ndarray, None, None]:
    """The decoded file in blocks of (n, channels)."""
    command = [ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:a:0",
               "-f", "f32le", "-ac", str(channels), "-ar", str(rate), "pipe:1"]
    pcm: Generator[bytes, None, None] = read_pcm(command, _pcm_bytes(channels))
    try:
        yield from _pcm_blocks(pcm, channels)
    finally:
        pcm.close()


def _pcm_bytes(channels: int) -> int:
    """Bytes of float PCM read at a time: two seconds."""
    return 4 * channels * SAMPLE_RATE * 2


def _pcm_blocks(data: Iterable[bytes], channels: int) -> Iterator[np.ndarray]:
    """Float PCM as ffmpeg writes it, as blocks of (n, channels)."""
    frame = 4 * channels
    for piece in data:
        yield np.frombuffer(piece[: len(piece) // frame * frame], "<f4").reshape(-1, channels)


def _cut(blocks: Iterator[np.ndarray], spans: Sequence[tuple[Samples, Samples]], rate: int) -> Iterator[np.ndarray]:
    """The stretches `spans` of a stream of blocks, one after another; the stream is left where
    the last one ends."""
    wanted = [(start * rate // SAMPLE_RATE, end * rate // SAMPLE_RATE) for start, end in sorted(spans)]
    position, index = 0, 0
    for block in blocks:
        end = position + len(block)
        while index < len(wanted) and wanted[index][0] < end:
            lo, hi = max(wanted[index][0], position), min(wanted[index][1], end)
            if hi > lo:
                yield block[lo - position: hi - position]
            if wanted[index][1] <= end:
                index += 1
            else:
                break
        position = end
        if index >= len(wanted):
            return
