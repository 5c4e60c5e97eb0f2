"""Plan + clips -> stereo PCM, in blocks, so memory does not grow with the track.

Everything audible is generated here: chimes, breath tones and noise beds (seeded,
so a render is repeatable). An audio file is decoded once by ffmpeg (see `decoded`) and
read a block at a time; a background file loops with a crossfaded seam.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .decoded import Decoded, decoded
from .errors import InvalidInput
from .files import with_checksum, without_checksum, write_atomically
from .loudness import BLOCK_LENGTH, as_played, k_weighted_energy, loudness_of_energy, meter_pcm
from .plan import Event, Kind, Plan
from .script import Background, Duck
from .speech import FRAME, ClipLevels
from .units import CHANNELS, SAMPLE_RATE, Samples, db_to_gain, to_samples

BLOCK = SAMPLE_RATE * 2  # samples per block handed to the encoder
CHIME_DB = -4.0  # a chime's or bowl's loudness relative to the voice's, LU
TONE_DB = -10.0  # a breath tone's loudness relative to the voice's, LU
NOMINAL_VOICE_LUFS = -20.0  # the voice's loudness, as its clips are, in a track with no speech to measure
# the voice's loudness is taken to a tenth of a LU (the file is within 0.05 LU of its target all
# the same): an edit that moves it less leaves every gain as it was, so the minutes of the track
# it does not touch come out the same, and their frames are taken from the file they replace
VOICE_DECIMALS = 1
# how much of a generated bed its loudness is read over: steady noise settles in seconds, the drone
# is a one-minute loop, the ocean's swells take longer to average out
METER_FORMAT = "k-energy-1"  # how a kept sound's loudness was read: a value read otherwise is read again
BED_PROBE = {"ocean": SAMPLE_RATE * 120, "drone": SAMPLE_RATE * 60}
NOISE_PROBE = SAMPLE_RATE * 20
NOISE_SEED = 20261122
LOOP_CROSSFADE = SAMPLE_RATE  # 1 s crossfade where a background file loops


def voice_level_db(clips: Iterable[ClipLevels]) -> float:
    """The voice's RMS level over its active speech (louder than -40 dBFS), from each clip's
    levels: the reference for finding where it sounds."""
    active = [0.0, 0]  # sum of squares, samples
    every = [0.0, 0]
    for clip in clips:
        active[0] += clip.active[0]
        active[1] += clip.active[1]
        every[0] += clip.every[0]
        every[1] += clip.every[1]
    total, count = active if active[1] else every
    return float(10 * np.log10(total / count + 1e-12)) if count else -20.0


# ---------------------------------------------------------------- generated sounds


def _struck(length: Samples, base: float, modes, detune: float, second: float, phase: float,
            attack: float, tail: float) -> np.ndarray:
    """A struck, ringing object: for each (ratio to `base`, amplitude, seconds to fall 60 dB),
    a partial and a second one `detune` Hz above it (weight `second`), so it shimmers or beats;
    a short attack, a faded tail, and RMS 1 over the first second."""
    t = np.arange(length, dtype=np.float64) / SAMPLE_RATE
    out = np.zeros(length)
    for ratio, amp, t60, *beat in modes:
        freq = base * ratio
        decay = np.exp(-6.91 * t / t60)
        above = freq + (beat[0] if beat else detune)
        out += amp * decay * (np.sin(2 * np.pi * freq * t) + second * np.sin(2 * np.pi * above * t + phase))
    rise = min(int(attack * SAMPLE_RATE), length)
    out[:rise] *= np.linspace(0, 1, rise)
    fade = min(int(tail * SAMPLE_RATE), length)
    out[-fade:] *= np.linspace(1, 0, fade)
    return (out / np.sqrt(np.mean(out[: SAMPLE_RATE] ** 2))).astype(np.float32)


STRUCK_FORMAT = 1  # bump when how a chime or bowl is made changes: those kept on disk are made again


@lru_cache(maxsize=8)
def chime(length: Samples) -> np.ndarray:
    """A soft struck bell: inharmonic partials, each decaying at its own rate; two slightly
    detuned strikes give the slow shimmer of a real bell. Made once (0.1 s) and kept (see `_kept`)."""
    # (ratio to G4, amplitude, seconds to fall 60 dB): a bell's hum, prime, tierce, quint, nominal...
    partials = ((0.5, 0.35, 5.5), (1.0, 1.0, 4.5), (1.19, 0.35, 3.2), (1.5, 0.25, 2.6),
                (2.0, 0.3, 2.2), (2.51, 0.12, 1.4), (3.01, 0.08, 1.0), (4.17, 0.05, 0.7))
    return _kept(f"chime-{length}-{STRUCK_FORMAT}", length, lambda: _struck(
        length, 392.0, partials, detune=0.7, second=0.5, phase=1.3, attack=0.004, tail=0.5))


@lru_cache(maxsize=4)
def bowl(length: Samples) -> np.ndarray:
    """A struck singing bowl: a low fundamental and the bowl's widely spaced modes, each split
    in two a few hertz apart (the bowl is never perfectly round), so it beats and sings."""
    # (ratio to G3, amplitude, seconds to fall 60 dB, beat in Hz between the mode's two halves)
    modes = ((1.0, 1.0, 11.0, 1.3), (2.71, 0.45, 7.0, 2.1), (5.02, 0.2, 4.0, 3.4), (7.96, 0.08, 2.5, 4.8))
    return _kept(f"bowl-{length}-{STRUCK_FORMAT}", length, lambda: _struck(
        length, 196.0, modes, detune=0.0, second=1.0, phase=0.7, attack=0.006, tail=1.0))


GENERATED = {"chime": chime, "bowl": bowl}


TONE_HZ = {"in": 528.0, "hold": 462.0, "out": 396.0, "rest": 462.0}  # a hold, full or empty, sits between


@lru_cache(maxsize=8)
def tone(length: Samples, phase: str) -> np.ndarray:
    """A soft sine with raised-cosine edges: higher for breathing in, lower for out, between the
    two for a hold (after in or after out)."""
    freq = TONE_HZ.get(phase, 396.0)
    t = np.arange(length) / SAMPLE_RATE
    window = np.sin(np.pi * np.arange(length) / max(length - 1, 1)) ** 2
    out = np.sin(2 * np.pi * freq * t) * window
    return (out / np.sqrt(np.mean(out**2) + 1e-12)).astype(np.float32)


NOISE_LOOP = 1 << 22  # samples in a generated noise's loop: 95 s, made by one FFT (and 17 MB held)
HIGH_PASS_HZ = 20.0  # nothing under this is heard; brown noise would spend half its power there


NOISE_FORMAT = 2  # bump when the noise a loop holds, or how it is kept, changes: loops kept on disk are made again
_LOOPS = threading.Lock()  # one loop made at a time: a second asker waits for it, and shares it
_KEPT_IN: list[Path] = []  # where generated sounds are kept between processes (see `keep_sounds_in`)
_HELD: dict[tuple[str, int], np.ndarray] = {}  # the loops this process has, the latest 4


def keep_sounds_in(folder: Path | None) -> None:
    """Keep what this process makes of the generated sounds in `folder` (render gives the clip
    cache's), and read it from there: the noise loops in `beds` (35 ms to read, 0.45 s to
    make) with the chimes and bowls (1 ms, 0.1 s), and every sound's loudness in `levels` (see `_metered`)."""
    _KEPT_IN[:] = [folder] if folder is not None else []


def noise_loop(kind: str, seed: int = NOISE_SEED) -> np.ndarray:
    """See `_noise_loop`: made once in the process, whichever thread asks first, or read from
    where the loops are kept (with its checksum; a damaged one is made again)."""
    with _LOOPS:
        if (kind, seed) in _HELD:
            return _HELD[kind, seed]
        loop = _kept(f"{kind}-{seed}-{NOISE_LOOP}-{NOISE_FORMAT}", NOISE_LOOP, lambda: _noise_loop(kind, seed))
        if len(_HELD) >= 4:
            _HELD.pop(next(iter(_HELD)))
        _HELD[kind, seed] = loop
        return loop


def _kept(name: str, length: Samples, make: Callable[[], np.ndarray]) -> np.ndarray:
    """A generated sound of `length` float32 samples: read from where the sounds are kept
    (`beds/NAME.f32`, with its checksum), or made and kept there (replacing a damaged one)."""
    path = _KEPT_IN[0] / "beds" / f"{name}.f32" if _KEPT_IN else None
    if path is not None:
        try:
            payload = without_checksum(path.read_bytes())
        except OSError:
            payload = None
        if payload is not None and len(payload) == 4 * length:
            return np.frombuffer(payload, np.float32)  # read-only, as a made one is
    sound = make()
    sound.flags.writeable = False  # shared by every use in the process
    if path is not None:
        try:
            write_atomically(path, with_checksum(sound.tobytes()))
        except OSError:
            pass  # a read-only or full cache: the next render makes it again
    return sound


def _noise_loop(kind: str, seed: int = NOISE_SEED) -> np.ndarray:
    """A loop of coloured noise, NOISE_LOOP samples at unit RMS, that runs from its end into its
    start with no seam: seeded Gaussian white noise, shaped in frequency (one FFT, so the loop is
    periodic by construction) by the magnitude of the colour's filter, white (flat), pink
    (Kellet's) or brown (a leaky integrator), and a gentle 20 Hz high-pass. Made once and
    looped, so a bed costs the same for ten minutes or eight hours."""
    bins = NOISE_LOOP // 2 + 1
    # white noise's spectrum, made directly: every bin's real and imaginary parts independent
    # Gaussians (an FFT of white noise would give the same, and cost as much again)
    rng = np.random.default_rng(seed)
    spectrum = rng.standard_normal(2 * bins, dtype=np.float32).view(np.complex64)
    b, a = NoiseBed.FILTERS[kind]
    step = 1 << 20  # bins shaped at a time: an 8-hour render's memory stays low
    for at in range(0, bins, step):
        hz = np.arange(at, min(at + step, bins)) * (SAMPLE_RATE / NOISE_LOOP)
        # the filter's power response |B|^2 / |A|^2, each a polynomial in cos(omega) (Chebyshev's)
        cosine = np.cos(2 * np.pi / SAMPLE_RATE * hz)
        shape = np.sqrt(_power_response(b, cosine) / _power_response(a, cosine))
        shape *= hz**2 / np.sqrt(hz**4 + HIGH_PASS_HZ**4)  # a second-order Butterworth high-pass
        spectrum[at: at + len(hz)] *= shape.astype(np.float32)
    loop = np.fft.irfft(spectrum, NOISE_LOOP).astype(np.float32, copy=False)
    del spectrum
    loop /= np.float32(np.sqrt(float(np.dot(loop, loop)) / NOISE_LOOP))
    loop.flags.writeable = False  # shared by every bed of this colour in the process
    return loop


def _power_response(taps: list[float], cosine: np.ndarray) -> np.ndarray:
    """|sum taps[k] e^(-jk omega)|^2 at each cos(omega): r0 + 2 sum r_m cos(m omega), where r is
    the taps' autocorrelation; cos(m omega) is the Chebyshev polynomial T_m of cos(omega)."""
    r = np.correlate(taps, taps, "full")[len(taps) - 1:]
    total = np.full_like(cosine, r[0])
    before, now = np.ones_like(cosine), cosine
    for coefficient in r[1:]:
        total += 2 * coefficient * now
        before, now = now, 2 * cosine * now - before
    return total


class NoiseBed:
    """Endless seeded noise with unit RMS, white, pink or brown: a loop (see `noise_loop`) read by
    two heads half a loop apart, one for each ear, so the channels are independent."""

    FILTERS = {  # each colour's filter: numerator and denominator taps
        "white-noise": ([1.0], [1.0]),
        "pink-noise": ([0.049922035, -0.095993537, 0.050612699, -0.004408786],
                       [1.0, -2.494956002, 2.017265875, -0.522189400]),
        "brown-noise": ([1.0], [1.0, -0.997]),
    }

    def __init__(self, kind: str, seed: int = NOISE_SEED):
        self.loop = noise_loop(kind, seed)
        self.position = 0

    def read(self, count: Samples) -> np.ndarray:
        out = np.empty((count, CHANNELS), dtype=np.float32)
        for channel in range(CHANNELS):
            _wrapped(self.loop, self.position + channel * len(self.loop) // CHANNELS, out[:, channel])
        self.position = (self.position + count) % len(self.loop)
        return out


def _wrapped(loop: np.ndarray, start: int, out: np.ndarray) -> None:
    """Fill `out` from `loop` read from `start` on, round and round."""
    filled, at = 0, start % len(loop)
    while filled < len(out):
        take = min(len(out) - filled, len(loop) - at)
        out[filled: filled + take] = loop[at: at + take]
        filled += take
        at = 0


class Ocean:
    """Slow swells: brown noise that rises and falls like waves on a shore, with pink hiss
    at each crest. The swell is three slow sines with periods that never line up."""

    SWELLS = ((9.1, 1.0, 0.0), (13.7, 0.6, 1.1), (5.3, 0.35, 2.3))  # (period s, weight, phase)

    def __init__(self, seed: int = NOISE_SEED):
        self.body = NoiseBed("brown-noise", seed)
        self.hiss = NoiseBed("pink-noise", seed + 1)
        self.position = 0
        probe = self._swell(np.arange(0, 3600 * SAMPLE_RATE, SAMPLE_RATE // 20))
        self.gain = 1.0 / np.sqrt(np.mean((0.3 + 0.7 * probe) ** 2) + np.mean((0.5 * probe**2) ** 2))

    def _swell(self, index: np.ndarray) -> np.ndarray:
        t = index / SAMPLE_RATE
        total = sum(weight * np.sin(2 * np.pi * t / period + phase) for period, weight, phase in self.SWELLS)
        return (0.5 + 0.5 * total / sum(w for _, w, _ in self.SWELLS)) ** 1.5  # 0..1, lingering low

    def read(self, count: Samples) -> np.ndarray:
        swell = self._swell(np.arange(self.position, self.position + count, dtype=np.float64))
        swell = swell.astype(np.float32)[:, None]
        self.position += count
        out = self.body.read(count) * (0.3 + 0.7 * swell)
        out += self.hiss.read(count) * (0.5 * swell**2)
        out *= self.gain
        return out


@lru_cache(maxsize=1)
def _drone_loop() -> np.ndarray:
    """One minute of a soft drone on A (110 Hz) with its fifth and octaves. Every frequency,
    beat and swell is a whole number of cycles in the minute, so the loop has no seam."""
    period = 60  # seconds
    t = np.arange(period * SAMPLE_RATE, dtype=np.float64) / SAMPLE_RATE
    out = np.zeros((len(t), CHANNELS))
    # (cycles per minute, amplitude, beats per minute between its two voices, swells per minute)
    partials = ((6600, 1.0, 5, 2), (9900, 0.45, 7, 3), (13200, 0.3, 4, 5), (19800, 0.12, 9, 4),
                (26400, 0.06, 11, 7))
    for index, (cycles, amp, beats, swells) in enumerate(partials):
        swell = 0.75 + 0.25 * np.sin(2 * np.pi * swells * t / period + index)
        for channel in range(CHANNELS):
            spread = beats + channel  # the two ears beat a little differently: a wide, slow shimmer
            low = np.sin(2 * np.pi * cycles * t / period + index + channel)
            high = np.sin(2 * np.pi * (cycles + spread) * t / period + 2 * index)
            out[:, channel] += amp * swell * (low + high)
    return (out / np.sqrt(np.mean(out**2))).astype(np.float32)


class Drone:
    def __init__(self):
        self.loop = Loop(_drone_loop())

    def read(self, count: Samples) -> np.ndarray:
        return self.loop.read(count)


class Loop:
    """Endless repetition of a buffer that is already seamless."""

    def __init__(self, audio: np.ndarray):
        self.audio = audio
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


class LoopedFile:
    """An audio file looped seamlessly, unit RMS, read from its decoded copy a block at a time.
    The file's end is crossfaded into its start with equal-power curves, so the seam keeps its
    loudness and has no gap or click."""

    def __init__(self, path: str):
        self.source = decoded(path)
        length = len(self.source)
        fade = min(LOOP_CROSSFADE, length // 4)
        self.period = length - fade  # one time round the loop
        angle = np.linspace(0.0, np.pi / 2, fade, dtype=np.float64)[:, None]
        head, tail = self.source[0:fade], self.source[length - fade: length]
        self.head = (head * np.sin(angle) + tail * np.cos(angle)).astype(np.float32)
        def power(x: np.ndarray) -> float:
            return float(np.square(x, dtype=np.float64).sum())
        # the loop's power: the whole file's, less the two ends, plus the crossfaded seam
        loop = self.source.rms ** 2 * length * CHANNELS - power(head) - power(tail) + power(self.head)
        self.scale = np.float32(1.0 / np.sqrt(loop / (self.period * CHANNELS)))
        self.position = 0

    def read(self, count: Samples) -> np.ndarray:
        out = np.empty((count, CHANNELS), dtype=np.float32)
        filled = 0
        while filled < count:
            at = self.position
            if at < len(self.head):
                take = min(count - filled, len(self.head) - at)
                out[filled: filled + take] = self.head[at: at + take]
            else:
                take = min(count - filled, self.period - at)
                out[filled: filled + take] = self.source[at: at + take]
            filled += take
            self.position = (at + take) % self.period
        out *= self.scale
        return out


# The generated beds, by the name a script gives (script.GENERATED_BACKGROUNDS lists the same
# names for the checker; tests/test_mix.py holds the two together). Each has read(count).
BEDS: dict[str, Callable[[], NoiseBed | Ocean | Drone]] = {
    "brown-noise": lambda: NoiseBed("brown-noise"),
    "pink-noise": lambda: NoiseBed("pink-noise"),
    "white-noise": lambda: NoiseBed("white-noise"),
    "ocean": lambda: Ocean(),
    "drone": lambda: Drone(),
}


def _bed(background: Background) -> NoiseBed | Ocean | Drone | LoopedFile:
    return LoopedFile(background.sound) if background.is_file else BEDS[background.sound]()


def _envelope(start: Samples, count: Samples, total: Samples, fade_in: Samples, fade_out: Samples) -> np.ndarray:
    index = np.arange(start, start + count, dtype=np.float64)
    gain = np.ones(count)
    if fade_in:
        gain = np.minimum(gain, index / fade_in)
    if fade_out:
        gain = np.minimum(gain, (total - index) / fade_out)
    return np.clip(gain, 0.0, 1.0).astype(np.float32)[:, None]


# ---------------------------------------------------------------- ducking

VOICED_DB = -30.0  # a frame this far below the voice's level is not speech
BRIDGE = to_samples(0.25)  # shorter quiet inside speech (between words) does not let the bed up


def voiced_spans(clip: np.ndarray | ClipLevels, threshold: float) -> list[tuple[Samples, Samples]]:
    """Where a clip actually sounds, by its 10 ms frames' power: (start, end) in samples, gaps
    under BRIDGE joined."""
    found = clip if isinstance(clip, ClipLevels) else ClipLevels.of(clip)
    if not len(found.power):
        return [(0, found.length)] if found.length else []
    loud = np.flatnonzero(found.power > threshold**2)
    spans: list[tuple[Samples, Samples]] = []
    for frame in loud:
        start, end = int(frame) * FRAME, (int(frame) + 1) * FRAME
        if spans and start - spans[-1][1] < BRIDGE:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


class Ducker:
    """The bed's gain under the voice: down by `depth` over `attack` before each stretch of
    speech (it looks ahead, so the first syllable is already clear), back up over `release`
    after it, along raised-cosine curves so the bed never steps. The two curves are worked out
    once; a block's gain is slices of them and of the full depth, so ducking costs next to
    nothing however much speech there is."""

    def __init__(self, spans: list[tuple[Samples, Samples]], duck: Duck):
        merged = _merged(spans)
        self.starts = [s for s, _ in merged]
        self.ends = [e for _, e in merged]
        self.duck = duck
        self.depth = np.float32(self._gain(np.ones(1))[0])
        self.rise = self._gain(np.arange(duck.attack, dtype=np.float64) / max(duck.attack, 1))
        self.fall = self._gain(np.arange(duck.release, 0, -1, dtype=np.float64) / max(duck.release, 1))

    def _gain(self, amount: np.ndarray) -> np.ndarray:
        """The gain for an amount of ducking from 0 (none) to 1 (the full depth)."""
        shaped = 0.5 - 0.5 * np.cos(np.pi * amount)
        return (10 ** (-self.duck.depth_db * shaped / 20)).astype(np.float32)

    def gain(self, begin: Samples, count: Samples) -> np.ndarray | None:
        """The gain for samples begin..begin+count, or None where the bed is not ducked at all.
        Where two stretches' curves meet, the deeper one holds."""
        attack, release = self.duck.attack, self.duck.release
        first = bisect.bisect_right(self.ends, begin - release)
        last = bisect.bisect_left(self.starts, begin + count + attack)
        if first >= last:
            return None
        out = np.ones(count, np.float32)
        end_of_block = begin + count
        for start, end in zip(self.starts[first:last], self.ends[first:last], strict=True):
            for at, curve in ((start - attack, self.rise), (start, None), (end, self.fall)):
                length = len(curve) if curve is not None else end - start
                lo, hi = max(begin, at), min(end_of_block, at + length)
                if hi <= lo:
                    continue
                part = out[lo - begin: hi - begin]
                if curve is None:
                    np.minimum(part, self.depth, out=part)
                else:
                    np.minimum(part, curve[lo - at: hi - at], out=part)
        return out[:, None]


# ---------------------------------------------------------------- levels


@dataclass(frozen=True)
class Levels:
    """Where every sound sits, on the scale of the voice's own clips: the voice's loudness there
    (LUFS, to VOICE_DECIMALS), and the gain (dB) that takes each other sound to its level relative to it."""

    voice_lufs: float
    spans: tuple[tuple[Samples, Samples], ...] = ()  # the utterances at full level, where they sound
    gains: Mapping[str, float] = field(default_factory=dict)  # a sound's key -> dB
    voiced: tuple[tuple[Samples, Samples], ...] = ()  # where any speech sounds, faded cues too: the bed ducks there

    def gain(self, key: str) -> float:
        return db_to_gain(self.gains[key])


def sound_key(event: Event) -> str:
    """What a non-speech event plays: its gain in `Levels` is found under this key."""
    if event.kind is Kind.TONE:
        return f"tone:{event.text}:{event.length}"
    return f"{event.kind}:{event.text or 'chime'}:{event.length}:{event.gain_db}"


def _merged(spans: list[tuple[Samples, Samples]]) -> list[tuple[Samples, Samples]]:
    merged: list[tuple[Samples, Samples]] = []
    for start, end in sorted(spans):
        if merged and start - merged[-1][1] < BRIDGE:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def voice_loudness(spans: list[tuple[Samples, Samples]], events: list[Event],
                   measured: Callable[[str], ClipLevels], channels: int = CHANNELS) -> float:
    """The voice's loudness (LUFS, on its clips' scale): its utterances, each from where it
    starts to sound to where it stops, joined and metered (see `loudness.measure_file`, which
    reads a finished file the same way). Read from the clips' K-weighted energies in 10 ms
    frames (see `ClipLevels`), each placed where its stretch falls in the joined stream: within
    0.01 LU of metering the joined audio (tests/test_loudness.py). `events` are sorted by start."""
    if not spans:
        return NOMINAL_VOICE_LUFS
    starts = [e.start for e in events]
    longest = max((e.length for e in events), default=0)
    joined = np.zeros(-(-sum(end - start for start, end in spans) // FRAME) + 1)
    offset = 0  # where the stretch starts in the joined stream, in samples
    for start, end in spans:
        for event in events[bisect.bisect_left(starts, start - longest): bisect.bisect_left(starts, end)]:
            lo, hi = max(start, event.start), min(end, event.start + event.length)
            if hi > lo:  # two clips sounding at once add their energies
                energy = measured(event.text).energy
                part = energy[(lo - event.start) // FRAME: -(-(hi - event.start) // FRAME)]
                at = round((offset + lo - start) / FRAME)
                part = part[: len(joined) - at]
                joined[at: at + len(part)] += part
        offset += end - start
    # the clips are mono: a stereo file plays them in both channels, which the meter reads as
    # exactly twice the power of one, so one is read and 3.01 dB added
    found = loudness_of_energy(joined[: offset // FRAME], FRAME)  # whole frames, as the meter reads whole blocks
    if found is None:
        return NOMINAL_VOICE_LUFS
    return found + (10 * math.log10(CHANNELS) if channels == CHANNELS else 0.0)


def levels(plan: Plan, clip: Callable[[str], np.ndarray], bed_db: float = -18.0, channels: int = CHANNELS,
           measured: Callable[[str], ClipLevels] | None = None) -> Levels:
    """Every sound's gain, each level read as loudness relative to the voice's in a file of
    `channels` (in mono, a bed whose channels differ sums to less). `bed_db` is the background's
    level when the script gives none. `measured` gives a text's `ClipLevels` (the speaker's,
    kept in the cache); by default they are worked out from `clip`."""
    if measured is None:
        measured = lru_cache(maxsize=None)(lambda text: ClipLevels.of(clip(text)))
    spoken = _voiced(plan, measured)
    voiced = tuple((e.start + a, e.start + b) for e in plan.speech() for a, b in spoken[e.text])
    full = [e for e in plan.speech() if e.gain_db == 0]  # cues that fade are softer than the voice on purpose
    # each utterance from where it starts to sound to where it stops, pauses inside it included
    spans = _merged([(e.start + spoken[e.text][0][0], e.start + spoken[e.text][-1][1])
                     for e in full if spoken[e.text]])
    # every sound's own loudness, each read by its own meter, all at once
    sounds = {sound_key(e): e for e in plan.events if e.kind is not Kind.SPEECH}
    background = plan.script.background
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="guidetrack-levels") as pool:
        voice_reading = pool.submit(voice_loudness, spans, sorted(full, key=lambda e: e.start), measured, channels)
        units = {key: pool.submit(_unit_loudness, e.kind, e.text, e.length, channels) for key, e in sounds.items()}
        bed = pool.submit(_bed_loudness, background, channels) if background is not None else None
        voice = round(voice_reading.result(), VOICE_DECIMALS)
        gains: dict[str, float] = {}
        for key, event in sounds.items():
            relative = {Kind.CHIME: CHIME_DB, Kind.TONE: TONE_DB}.get(event.kind, event.gain_db)
            gains[key] = voice + relative - units[key].result()
        if background is not None and bed is not None:
            level = background.level_db if background.level_db is not None else bed_db
            gains["bed"] = voice + level - bed.result()
    return Levels(voice, tuple(spans), gains, voiced)


def _audio(event: Event) -> np.ndarray | Decoded:
    """A non-speech event's sound at unit scale (an audio file is read by slices)."""
    if event.kind is Kind.CHIME:
        return GENERATED[event.text or "chime"](event.length)
    if event.kind is Kind.SOUND:
        return _sound(event.text, event.length) if event.text in GENERATED else decoded(event.text)
    if event.kind is Kind.TONE:
        return tone(event.length, event.text)
    raise ValueError(f"no sound for a {event.kind} event")


def _voiced(plan: Plan, measured: Callable[[str], ClipLevels]) -> dict[str, list[tuple[Samples, Samples]]]:
    """Where each utterance's clip sounds (see `voiced_spans`)."""
    texts = list(dict.fromkeys(e.text for e in plan.speech()))
    threshold = db_to_gain(voice_level_db(measured(t) for t in texts) + VOICED_DB)
    return {text: voiced_spans(measured(text), threshold) for text in texts}


IN_PROCESS = SAMPLE_RATE * 120  # the longest sound metered in this process (the ocean's probe): 60 MB held at most


def _loudness(blocks: Callable[[], Iterable[np.ndarray]], channels: int) -> float | None:
    """The integrated loudness of the PCM `blocks()` gives, read as the voice's is (see
    `voice_loudness`): each channel K-weighted in this process (`k_weighted_energy`), their
    energies added in 10 ms frames and gated. Within 0.01 LU of ffmpeg's meter, which reads a
    sound longer than IN_PROCESS (tests/test_mix.py); a generated bed's, a chime's or a tone's
    costs no ffmpeg start."""
    held: list[np.ndarray] = []
    count = 0
    for block in blocks():
        held.append(block)
        count += len(block)
        if count > IN_PROCESS:
            del held
            return meter_pcm(blocks(), channels).integrated
    if not count:
        return None
    audio = np.concatenate(held)
    del held
    if audio.ndim == 1:
        audio = audio[:, None]
    energy = sum(k_weighted_energy(np.ascontiguousarray(audio[:, c]), FRAME) for c in range(audio.shape[1]))
    return loudness_of_energy(np.asarray(energy, dtype=np.float64), FRAME)


def _metered(blocks: Callable[[], Iterable[np.ndarray]], channels: int) -> float | None:
    """The integrated loudness of the PCM `blocks()` gives (see `_loudness`); remembered
    where the sounds are kept, by the sha256 of the very samples, so a sound is metered once
    however many renders play it (and a changed sound, file or generator is metered anew)."""
    if not _KEPT_IN:
        return _loudness(blocks, channels)
    named = hashlib.sha256(f"{channels}|{METER_FORMAT}".encode())
    for block in blocks():
        named.update(np.ascontiguousarray(block, "<f4").data)
    path = _KEPT_IN[0] / "levels" / f"sound-{named.hexdigest()}.json"
    try:
        kept = json.loads(path.read_bytes())["lufs"]
        if kept is None or (isinstance(kept, float) and math.isfinite(kept)):
            return kept
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not there, or damaged: metered again
    found = _loudness(blocks, channels)
    try:
        write_atomically(path, json.dumps({"lufs": found}).encode())
    except OSError:
        pass  # a read-only or full cache: metered again next time
    return found


@lru_cache(maxsize=64)
def _unit_loudness(kind: Kind, text: str, length: Samples, channels: int) -> float:
    """A sound's loudness, read over at least one 400 ms block (a short tone with the quiet
    after it, as the meter hears it)."""
    audio = _audio(Event(0, length, kind, text))
    length = min(length, len(audio))

    def blocks() -> Iterator[np.ndarray]:
        for start in range(0, length, BLOCK):
            yield as_played(audio[start: min(start + BLOCK, length)], channels)
        if length < BLOCK_LENGTH:
            yield np.zeros((BLOCK_LENGTH - length,) + ((channels,) if channels > 1 else ()), np.float32)

    found = _metered(blocks, channels)
    return found if found is not None else NOMINAL_VOICE_LUFS


_BEDS_METERED = threading.Lock()  # a bed is read once: a second asker waits for the first's reading


def _bed_loudness(background: Background, channels: int) -> float:
    with _BEDS_METERED:
        if background.is_file:
            return _file_bed_loudness(background.sound, channels)
        return _generated_bed_loudness(background.sound, channels)


def prepare_background(background: Background | None, channels: int = CHANNELS) -> None:
    """Make and meter the background now (a generated noise's loop takes 0.2 s to make), so
    that `levels` finds it ready: render starts this while the voice is spoken."""
    if background is not None:
        _bed_loudness(background, channels)


@lru_cache(maxsize=8)
def _generated_bed_loudness(sound: str, channels: int) -> float:
    def blocks() -> Iterator[np.ndarray]:
        bed = _bed(Background(sound))
        for _ in range(BED_PROBE.get(sound, NOISE_PROBE) // BLOCK):
            yield as_played(bed.read(BLOCK), channels)

    found = _metered(blocks, channels)
    return found if found is not None else NOMINAL_VOICE_LUFS


@lru_cache(maxsize=4)
def _file_bed_loudness(path: str, channels: int) -> float:
    def blocks() -> Iterator[np.ndarray]:
        bed = LoopedFile(path)
        for start in range(0, bed.period, BLOCK):
            yield as_played(bed.read(min(BLOCK, bed.period - start)), channels)

    found = _metered(blocks, channels)
    if found is None:
        raise InvalidInput(f"{path}: the audio file has no sound loud enough to measure")
    return found


# ---------------------------------------------------------------- the mix


def mix(plan: Plan, clip: Callable[[str], np.ndarray], where: Levels | None = None,
        block: Samples = BLOCK) -> Iterator[np.ndarray]:
    """Yield float32 blocks of shape (n, CHANNELS), exactly `plan.length` samples in all, with
    the voice's clips as they are and every other sound placed by `where` (worked out from the
    plan when not given)."""
    where = where if where is not None else levels(plan, clip)
    sounds = sorted(plan.events, key=lambda e: e.start)
    starts = [e.start for e in sounds]
    longest = max((e.length for e in sounds), default=0)
    background = plan.script.background
    bed = _bed(background) if background else None
    bed_start, bed_end = plan.bed
    bed_gain = where.gain("bed") if background else 0.0
    ducker = None
    if background is not None and background.duck is not None:
        ducker = Ducker(list(where.voiced), background.duck)

    def audio_of(event: Event) -> tuple[np.ndarray | Decoded, float]:
        """What an event plays, and the gain it plays at."""
        if event.kind is Kind.SPEECH:
            return clip(event.text), db_to_gain(event.gain_db)
        return _audio(event), where.gain(sound_key(event))

    for begin in range(0, plan.length, block):
        count = min(block, plan.length - begin)
        end = begin + count
        out = np.zeros((count, CHANNELS), dtype=np.float32)
        lo, hi = max(begin, bed_start), min(end, bed_end)
        if bed is not None and background is not None and hi > lo:
            noise = bed.read(hi - lo)
            noise *= bed_gain
            if lo - bed_start < background.fade_in or hi > bed_end - background.fade_out:
                noise *= _envelope(lo - bed_start, hi - lo, bed_end - bed_start,
                                   background.fade_in, background.fade_out)
            dip = ducker.gain(lo, hi - lo) if ducker else None
            if dip is not None:
                noise *= dip
            out[lo - begin: hi - begin] += noise
        first = bisect.bisect_left(starts, begin - longest)
        last = bisect.bisect_left(starts, end)
        for event in sounds[first:last]:
            if event.start + event.length <= begin:
                continue
            audio, gain = audio_of(event)
            lo = max(begin, event.start)
            hi = min(end, event.start + min(event.length, len(audio)))
            if hi > lo:
                part = audio[lo - event.start: hi - event.start]
                if gain != 1.0:
                    part = part * np.float32(gain)
                out[lo - begin: hi - begin] += part if part.ndim == 2 else part[:, None]
        yield out


@lru_cache(maxsize=4)
def _sound(name: str, length: Samples) -> np.ndarray:
    """A generated sound."""
    return GENERATED[name](length)
