"""True peak, 4x oversampled (ITU-R BS.1770-4, Annex 2), and a true-peak limiter, in numpy.

Each sample interval is looked at in three more places, a quarter, a half and three quarters of
the way along, by a 16-tap polyphase interpolator (a Kaiser-windowed sinc). An interpolated value
is a weighted sum of the 16 samples around it, so it can be at most BOUND times the largest of
them (BOUND: the sum of the taps' magnitudes). So only the stretches whose samples come within
that factor of the level in question are oversampled at all: on speech, a few percent of the
track. The result is exactly what oversampling everything would give, at a fraction of the cost.

The limiter lowers the gain only around the peaks that would pass the ceiling: the gain needed at
each sample is held for LIMIT_SPAN and smoothed with a raised cosine of the same length, so it
falls and recovers over about 10 ms each side and is never above what any sample needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

OVERSAMPLE = 4
TAPS = 16  # per phase: the samples each interpolated value is made from
BETA = 6.0  # the Kaiser window's shape: flat within 0.02 dB up to 16.5 kHz (at 44.1 kHz)
BLOCK = 256  # samples: the loud stretches are found in blocks this long
LIMIT_SPAN = 441  # samples (10 ms): how long a gain reduction is held, and how long it takes to come and go


def _phases() -> np.ndarray:
    """The interpolator: (OVERSAMPLE - 1, TAPS) taps for the points p/4 of the way from a sample
    to the next, applied to the samples from TAPS/2 - 1 before to TAPS/2 after it."""
    offsets = np.arange(-(TAPS // 2 - 1), TAPS // 2 + 1)  # -7 .. 8
    rows = []
    for phase in range(1, OVERSAMPLE):
        t = phase / OVERSAMPLE - offsets  # how far each sample is from the point
        window = np.i0(BETA * np.sqrt(np.clip(1 - (t / (TAPS / 2)) ** 2, 0, None))) / np.i0(BETA)
        taps = np.sinc(t) * window
        rows.append(taps / taps.sum())  # a steady signal passes unchanged
    return np.array(rows)


PHASES = _phases()
BOUND = float(np.abs(PHASES).sum(axis=1).max())  # an interpolated value is at most this times its samples'
_BEFORE, _AFTER = TAPS // 2 - 1, TAPS // 2  # samples each side an interval's points are made from
_TAPS32 = PHASES.astype(np.float32)


def _as_2d(audio: np.ndarray) -> np.ndarray:
    return audio if audio.ndim == 2 else audio[:, None]


def _sample_peaks(audio: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The sample peak of each BLOCK of audio[lo:hi], over every channel."""
    part = np.ascontiguousarray(audio[lo:hi])
    flat = part.reshape(-1)
    whole = len(part) // BLOCK * BLOCK * part.shape[1]
    rows = flat[:whole].reshape(-1, BLOCK * part.shape[1])  # a block of every channel a row
    peaks = np.maximum(rows.max(axis=1), -rows.min(axis=1))  # (no |x| of the whole made)
    if whole < len(flat):
        peaks = np.append(peaks, np.abs(flat[whole:]).max())
    return peaks


def _loud_blocks(peaks: np.ndarray, level: float) -> np.ndarray:
    """The blocks in which a true peak over `level` may lie: those whose samples, or their
    neighbours', reach level / BOUND (a block is far longer than the interpolator)."""
    near = peaks.copy()
    near[1:] = np.maximum(near[1:], peaks[:-1])
    near[:-1] = np.maximum(near[:-1], peaks[1:])
    return np.flatnonzero(near * BOUND > level)


def _interval_peaks(audio: np.ndarray, lo: int, hi: int, blocks: np.ndarray) -> np.ndarray:
    """(len(blocks), BLOCK): the true peak of each sample and the interval after it, over every
    channel, in the given BLOCKs of audio[lo:hi]; the samples of `audio` around them are read
    too, and silence beyond its ends. Points past `hi` read 0."""
    audio = _as_2d(audio)
    offsets = np.arange(-_BEFORE, BLOCK + _AFTER)
    index = lo + blocks[:, None] * BLOCK + offsets[None, :]  # (blocks, BLOCK + TAPS - 1)
    inside = (index >= 0) & (index < len(audio))
    gathered = audio[np.clip(index, 0, len(audio) - 1)] * inside[:, :, None]
    points = np.abs(gathered[:, _BEFORE: _BEFORE + BLOCK])
    for phase in _TAPS32:
        between = phase[0] * gathered[:, :BLOCK]
        for k in range(1, TAPS):  # each tap over every point at once
            between += phase[k] * gathered[:, k: k + BLOCK]
        np.maximum(points, np.abs(between), out=points)
    peaks = points.max(axis=2)
    peaks[index[:, _BEFORE: _BEFORE + BLOCK] >= hi] = 0.0
    return peaks


def interval_peaks(audio: np.ndarray) -> np.ndarray:
    """The true peak of each sample of `audio` and the interval after it (silence beyond its
    ends), over every channel: shape (n,). Every point is computed: for tests and small pieces."""
    blocks = np.arange(-(-len(audio) // BLOCK))
    return _interval_peaks(audio, 0, len(audio), blocks).reshape(-1)[: len(audio)]


def peak_between(audio: np.ndarray, lo: int, hi: int, at_least: float = 0.0) -> float:
    """The highest true peak of audio[lo:hi] (linear; the samples around it are read as its
    neighbours), or `at_least` if higher: only the stretches that can come near the highest
    sample are oversampled."""
    if hi <= lo:
        return at_least
    peaks = _sample_peaks(_as_2d(audio), lo, hi)
    found = max(at_least, float(peaks.max()))
    loud = _loud_blocks(peaks, found)
    if len(loud):
        found = max(found, float(_interval_peaks(audio, lo, hi, loud).max()))
    return found


def true_peak(audio: np.ndarray) -> float:
    """The highest true peak of `audio` (linear; 0.0 for silence)."""
    return peak_between(audio, 0, len(audio))


class _Stretches:
    """A stream of blocks cut again into stretches that each come with the samples around them:
    `add` and `close` give (audio, start, stop), audio[start:stop] the next stretch, with at least
    `before` samples before it in `audio` and `after` after it (fewer only at the stream's ends,
    beyond which is silence). Every sample is in one stretch, in order, whatever the blocks' sizes."""

    def __init__(self, before: int, after: int):
        self.before, self.after = before, after
        self.held: np.ndarray | None = None  # samples already given (context), then those not yet
        self.start = 0  # where, in `held`, the samples not yet given begin

    def add(self, block: np.ndarray) -> tuple[np.ndarray, int, int] | None:
        held = block if self.held is None else np.concatenate([self.held, block])
        ready = len(held) - self.after  # the samples before this have all they need after them
        if ready <= self.start:
            self.held = held
            return None
        stretch = (held, self.start, ready)
        keep = max(ready - self.before, 0)
        self.held, self.start = held[keep:], ready - keep
        return stretch

    def close(self) -> tuple[np.ndarray, int, int] | None:
        held, start = self.held, self.start
        self.held, self.start = None, 0
        return (held, start, len(held)) if held is not None and len(held) > start else None


class PeakMeter:
    """The true peak of a stream of blocks, read as they come: a block's last points are read
    once the samples after them have come."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stretches = _Stretches(_BEFORE, _AFTER)

    def add(self, block: np.ndarray) -> None:
        if (stretch := self._stretches.add(_as_2d(block))) is not None:
            self.peak = peak_between(*stretch, self.peak)

    def close(self) -> float:
        """The highest true peak of the whole stream (linear; 0.0 for silence)."""
        if (stretch := self._stretches.close()) is not None:
            self.peak = peak_between(*stretch, self.peak)
        return self.peak


def _running_max(values: np.ndarray, width: int) -> np.ndarray:
    """out[i] = max(values[i: i + width]), for every full window (van Herk's method: each window
    spans at most two segments of `width`, whose running maxima from each end are known)."""
    count = len(values)
    segments = -(-count // width)
    padded = np.full(segments * width, -np.inf, values.dtype)
    padded[:count] = values
    rows = padded.reshape(segments, width)
    forward = np.maximum.accumulate(rows, axis=1).reshape(-1)
    backward = np.maximum.accumulate(rows[:, ::-1], axis=1)[:, ::-1].reshape(-1)
    return np.maximum(backward[: count - width + 1], forward[width - 1: count])


def _box(values: np.ndarray, width: int) -> np.ndarray:
    """The mean of each full window of `width` (a running sum)."""
    total = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    return (total[width:] - total[:-width]) / width


def _gain(needed: np.ndarray) -> np.ndarray:
    """A smooth gain never over `needed` (each sample's most): the reduction (1 - needed) is
    held for LIMIT_SPAN samples each way, then smoothed by three running means, LIMIT_SPAN long
    together (a bell-shaped curve whose weights all fall within the hold)."""
    half = LIMIT_SPAN // 2
    box = (2 * half + 1 + 2) // 3  # three of these reach over at most 2 * half + 1 samples
    reach = half + 3 * (box - 1) // 2 + 1
    cut = np.pad(1.0 - needed.astype(np.float64), (reach, reach))
    held = _running_max(cut, 2 * half + 1)
    smooth = _box(_box(_box(held, box), box), box)
    start = (len(smooth) - len(needed)) // 2
    return (1.0 - smooth[start: start + len(needed)]).astype(np.float32)


class Limiter:
    """A true-peak limiter over a stream of blocks: each block raised by `gain` (linear), and
    lowered around any true peak over `ceiling` (linear) so that it reaches the ceiling at most.
    It holds back MARGIN samples, so that the gain before a peak is known when they are let go;
    the samples come out as they went in, in the same number, whatever the blocks' sizes."""

    MARGIN = 2 * LIMIT_SPAN + TAPS  # samples a gain depends on, each way

    def __init__(self, gain: float, ceiling: float):
        self.gain = np.float32(gain)
        self.ceiling = ceiling
        self.limited = 0  # samples whose gain was lowered

    def __call__(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        stretches = _Stretches(self.MARGIN, self.MARGIN)
        for block in blocks:
            if (stretch := stretches.add(_as_2d(block) * self.gain)) is not None:
                yield self._limit(*stretch)
        if (stretch := stretches.close()) is not None:
            yield self._limit(*stretch)

    def _limit(self, audio: np.ndarray, start: int, stop: int) -> np.ndarray:
        """audio[start:stop], limited, knowing what comes before and after it in `audio` (and
        silence beyond)."""
        out = audio[start:stop].copy()
        loud = _loud_blocks(_sample_peaks(audio, 0, len(audio)), self.ceiling)
        if not len(loud):
            return out
        peaks = _interval_peaks(audio, 0, len(audio), loud)
        over = peaks > self.ceiling
        if not over.any():
            return out
        where = (loud[:, None] * BLOCK + np.arange(BLOCK))[over]  # the samples over the ceiling
        needed = np.ones(len(audio), np.float32)
        needed[where] = self.ceiling / peaks[over]
        # a sample's need reaches LIMIT_SPAN each way: the gain is worked out around each group
        # of them, groups further apart than that being independent
        breaks = np.flatnonzero(np.diff(where) > 2 * LIMIT_SPAN + 2)
        for first, last in zip(where[np.r_[0, breaks + 1]], where[np.r_[breaks, len(where) - 1]], strict=True):
            lo, hi = max(int(first) - LIMIT_SPAN, start), min(int(last) + LIMIT_SPAN + 1, stop)
            if hi <= lo:
                continue
            around_lo, around_hi = max(lo - LIMIT_SPAN, 0), min(hi + LIMIT_SPAN, len(audio))
            gain = _gain(needed[around_lo:around_hi])[lo - around_lo: hi - around_lo]
            self.limited += int((gain < 1.0).sum())
            out[lo - start: hi - start] *= gain[:, None]
        return out
