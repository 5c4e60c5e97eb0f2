"""Plan + clips -> stereo PCM, in blocks, so memory does not grow with the track.

Everything audible is generated here: chimes, breath tones and noise beds (seeded,
so a render is repeatable). A background file is decoded once with pydub and
looped with a crossfaded seam.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from functools import lru_cache

import numpy as np

from .errors import InvalidInput
from .plan import Event, Plan
from .script import Background
from .units import CHANNELS, SAMPLE_RATE, Samples, db_to_gain

BLOCK = SAMPLE_RATE * 2  # samples per block handed to the encoder
CHIME_DB = -4.0  # chime loudness relative to the voice
TONE_DB = -10.0  # breath tone loudness relative to the voice
NOISE_SEED = 20261122
LOOP_CROSSFADE = SAMPLE_RATE  # 1 s crossfade where a background file loops


def rms_db(audio: np.ndarray) -> float:
    if not audio.size:
        return -120.0
    return float(10 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-12))


def voice_level_db(clips: list[np.ndarray]) -> float:
    """The voice's RMS level over its active speech: the reference for every other level."""
    if not clips:
        return -20.0
    joined = np.concatenate(clips)
    active = joined[np.abs(joined) > db_to_gain(-40)]
    return rms_db(active if active.size else joined)


# ---------------------------------------------------------------- generated sounds


@lru_cache(maxsize=8)
def chime(length: Samples) -> np.ndarray:
    """A soft struck bell: inharmonic partials, each decaying at its own rate."""
    t = np.arange(length, dtype=np.float64) / SAMPLE_RATE
    base = 392.0  # G4
    # (ratio to the base, amplitude, seconds to fall 60 dB): a bell's hum, prime, tierce, quint, nominal...
    partials = ((0.5, 0.35, 5.5), (1.0, 1.0, 4.5), (1.19, 0.35, 3.2), (1.5, 0.25, 2.6),
                (2.0, 0.3, 2.2), (2.51, 0.12, 1.4), (3.01, 0.08, 1.0), (4.17, 0.05, 0.7))
    out = np.zeros(length)
    for ratio, amp, t60 in partials:
        freq = base * ratio
        decay = np.exp(-6.91 * t / t60)
        # two slightly detuned strikes give the slow shimmer of a real bell
        out += amp * decay * (np.sin(2 * np.pi * freq * t) + 0.5 * np.sin(2 * np.pi * (freq + 0.7) * t + 1.3))
    attack = min(int(0.004 * SAMPLE_RATE), length)
    out[:attack] *= np.linspace(0, 1, attack)
    tail = min(int(0.5 * SAMPLE_RATE), length)
    out[-tail:] *= np.linspace(1, 0, tail)
    return (out / np.sqrt(np.mean(out[: SAMPLE_RATE] ** 2))).astype(np.float32)  # RMS 1 over the strike


@lru_cache(maxsize=8)
def tone(length: Samples, phase: str) -> np.ndarray:
    """A soft sine with raised-cosine edges: higher for breathing in, lower for out."""
    freq = 528.0 if phase == "in" else 396.0
    t = np.arange(length) / SAMPLE_RATE
    window = np.sin(np.pi * np.arange(length) / max(length - 1, 1)) ** 2
    out = np.sin(2 * np.pi * freq * t) * window
    return (out / np.sqrt(np.mean(out**2) + 1e-12)).astype(np.float32)


class NoiseBed:
    """Endless seeded noise with unit RMS: white, pink (Kellet's filter) or brown (leaky integrator)."""

    FILTERS = {
        "white-noise": ([1.0], [1.0]),
        "pink-noise": ([0.049922035, -0.095993537, 0.050612699, -0.004408786],
                       [1.0, -2.494956002, 2.017265875, -0.522189400]),
        "brown-noise": ([1.0], [1.0, -0.997]),
    }

    def __init__(self, kind: str, seed: int = NOISE_SEED):
        from scipy.signal import lfilter, lfilter_zi

        self._lfilter = lfilter
        self.b, self.a = (np.asarray(c, dtype=np.float32) for c in self.FILTERS[kind])
        impulse = np.zeros(1 << 16)
        impulse[0] = 1.0
        self.gain = 1.0 / np.sqrt(np.sum(lfilter(self.b, self.a, impulse) ** 2))
        self.rng = np.random.default_rng(seed)
        self.state = [np.zeros_like(lfilter_zi(self.b, self.a)) for _ in range(CHANNELS)]

    def read(self, count: Samples) -> np.ndarray:
        white = self.rng.standard_normal((CHANNELS, count), dtype=np.float32)
        out = np.empty((count, CHANNELS), dtype=np.float32)
        for channel in range(CHANNELS):
            out[:, channel], self.state[channel] = self._lfilter(self.b, self.a, white[channel], zi=self.state[channel])
        out *= self.gain
        return out


class LoopedFile:
    """An audio file decoded with pydub, looped seamlessly (crossfaded seam), unit RMS."""

    def __init__(self, path: str):
        from pydub import AudioSegment
        from pydub.exceptions import CouldntDecodeError

        try:
            segment = AudioSegment.from_file(path)
        except (CouldntDecodeError, IndexError, OSError) as err:
            # pydub's message carries ffmpeg's whole banner; its last line says what went wrong
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            reason = lines[-1].removeprefix(f"{path}: ")[:200] if lines else "unknown reason"
            raise InvalidInput(f"{path}: ffmpeg cannot decode this audio file ({reason}); "
                               "use an mp3, wav, ogg or flac file") from None
        segment = segment.set_frame_rate(SAMPLE_RATE).set_channels(CHANNELS).set_sample_width(2)
        audio = np.frombuffer(segment.raw_data, "<i2").astype(np.float32).reshape(-1, CHANNELS) / 32768.0
        if len(audio) < SAMPLE_RATE // 10:
            raise InvalidInput(f"{path}: the background file is shorter than 0.1 s")
        fade = min(LOOP_CROSSFADE, len(audio) // 4)
        if fade:
            ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)[:, None]
            loop = audio[: len(audio) - fade].copy()
            loop[:fade] = audio[:fade] * ramp + audio[len(audio) - fade:] * (1.0 - ramp)
            audio = loop
        level = np.sqrt(np.mean(np.square(audio, dtype=np.float64)))
        if level < 1e-5:
            raise InvalidInput(f"{path}: the background file is silent")
        self.audio = (audio / level).astype(np.float32)
        self.position = 0

    def read(self, count: Samples) -> np.ndarray:
        out = np.empty((count, CHANNELS), dtype=np.float32)
        filled = 0
        while filled < count:
            take = min(count - filled, len(self.audio) - self.position)
            out[filled: filled + take] = self.audio[self.position: self.position + take]
            filled += take
            self.position = (self.position + take) % len(self.audio)
        return out


def _bed(background: Background):
    return LoopedFile(background.sound) if background.is_file else NoiseBed(background.sound)


def _envelope(start: Samples, count: Samples, total: Samples, fade_in: Samples, fade_out: Samples) -> np.ndarray:
    index = np.arange(start, start + count, dtype=np.float64)
    gain = np.ones(count)
    if fade_in:
        gain = np.minimum(gain, index / fade_in)
    if fade_out:
        gain = np.minimum(gain, (total - index) / fade_out)
    return np.clip(gain, 0.0, 1.0).astype(np.float32)[:, None]


# ---------------------------------------------------------------- the mix


def mix(plan: Plan, clip: Callable[[str], np.ndarray], block: Samples = BLOCK) -> Iterator[np.ndarray]:
    """Yield float32 blocks of shape (n, CHANNELS), exactly `plan.length` samples in all."""
    speech = plan.speech()
    voice_db = voice_level_db([clip(t) for t in dict.fromkeys(e.text for e in speech)])
    sounds = sorted(plan.events, key=lambda e: e.start)
    starts = [e.start for e in sounds]
    longest = max((e.length for e in sounds), default=0)
    background = plan.script.background
    bed = _bed(background) if background else None
    bed_gain = db_to_gain(voice_db + background.level_db) if background else 0.0
    ref = db_to_gain(voice_db)

    def audio_of(event: Event) -> np.ndarray:
        if event.kind == "speech":
            audio = clip(event.text)
            return audio * db_to_gain(event.gain_db) if event.gain_db else audio
        if event.kind == "chime":
            return chime(event.length) * (ref * db_to_gain(CHIME_DB))
        return tone(event.length, event.text) * (ref * db_to_gain(TONE_DB))

    for begin in range(0, plan.length, block):
        count = min(block, plan.length - begin)
        end = begin + count
        out = np.zeros((count, CHANNELS), dtype=np.float32)
        if bed is not None:
            noise = bed.read(count)
            noise *= bed_gain
            if begin < background.fade_in or end > plan.length - background.fade_out:
                noise *= _envelope(begin, count, plan.length, background.fade_in, background.fade_out)
            out += noise
        first = bisect.bisect_left(starts, begin - longest)
        last = bisect.bisect_left(starts, end)
        for event in sounds[first:last]:
            if event.start + event.length <= begin:
                continue
            audio = audio_of(event)[: event.length]
            lo = max(begin, event.start)
            hi = min(end, event.start + len(audio))
            if hi > lo:
                out[lo - begin: hi - begin] += audio[lo - event.start: hi - event.start, None]
        yield out
