"""An independent meter for the tests: pyloudnorm's BS.1770 loudness and a 4x oversampled true
peak (scipy), never the ffmpeg meter that guidetrack itself uses."""

from __future__ import annotations

import subprocess
import warnings

import numpy as np

RATE = 44_100


def decode(path, rate: int = RATE, channels: int = 2) -> np.ndarray:
    """The decoded file as float32 frames (ffmpeg removes the encoder's padding)."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", str(channels),
                          "-ar", str(rate), "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.float32).reshape(-1, channels)


def lufs(audio: np.ndarray, rate: int = RATE) -> float:
    """Integrated loudness (LUFS), gated, by pyloudnorm's BS.1770-4 meter: its K-weighting filters,
    its 400 ms blocks and its two gates. Only its per-block Python loop is done at once here (it
    took 12 s for an hour of audio); the figures are pyloudnorm's own (test_loudness.py checks
    them against `Meter.integrated_loudness`)."""
    import pyloudnorm

    meter = pyloudnorm.Meter(rate)
    data = np.array(audio, dtype=np.float64)  # a copy: filtered in place
    pyloudnorm.util.valid_audio(data, rate, meter.block_size)
    if data.ndim == 1:
        data = data.reshape(-1, 1)
    for stage in meter._filters.values():
        for channel in range(data.shape[1]):
            data[:, channel] = stage.apply_filter(data[:, channel])
    size, step = meter.block_size, 1.0 - meter.overlap
    blocks = int(np.round((len(data) / rate - size) / (size * step))) + 1
    index = np.arange(blocks)  # each block's bounds, computed as pyloudnorm computes them
    lower = np.minimum((size * (index * step) * rate).astype(int), len(data))
    upper = np.minimum((size * (index * step + 1) * rate).astype(int), len(data))
    squares = np.zeros((len(data) + 1, data.shape[1]))  # one more row: a last bound may be len(data)
    np.square(data, out=squares[:-1])
    bounds = np.empty(2 * blocks, dtype=int)
    bounds[0::2], bounds[1::2] = lower, upper
    power = np.add.reduceat(squares, bounds, axis=0)[0::2].T / (size * rate)  # (channels, blocks)
    gains = np.array([1.0, 1.0, 1.0, 1.41, 1.41][: data.shape[1]])[:, None]
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of no blocks (silence), as pyloudnorm
        loudness = -0.691 + 10.0 * np.log10(np.sum(gains * power, axis=0))
        above = loudness >= -70.0
        relative = -0.691 + 10.0 * np.log10(np.sum(gains[:, 0] * power[:, above].mean(axis=1))) - 10.0
        gated = (loudness > relative) & (loudness > -70.0)
        mean = np.nan_to_num(power[:, gated].mean(axis=1))
        return float(-0.691 + 10.0 * np.log10(np.sum(gains[:, 0] * mean)))


def true_peak(audio: np.ndarray) -> float:
    """dBTP: the highest sample of the signal oversampled 4x (BS.1770-4, annex 2). Only the
    seconds whose sample peak is within 6 dB of the loudest are oversampled: a peak between
    samples stands at most a few dB over the samples beside it."""
    from scipy.signal import resample_poly

    seconds = len(audio) // RATE + 1
    loudest = np.array([np.abs(audio[i * RATE: (i + 1) * RATE]).max(initial=0.0) for i in range(seconds)])
    peak = 0.0
    margin = 256  # samples of context each side: the filter rings where a piece is cut off
    for i in np.flatnonzero(loudest >= loudest.max() / 2):
        start = max(i * RATE - margin, 0)
        piece = audio[start: (i + 1) * RATE + margin].astype(np.float64)
        up = np.abs(resample_poly(piece, 4, 1, axis=0))
        inner = up[4 * (i * RATE - start): 4 * ((i + 1) * RATE - start)]  # this second only
        peak = max(peak, float(inner.max(initial=0.0)))
    return 20 * np.log10(peak)


def spans(plan: dict, full_level_only: bool = True) -> list[tuple[float, float]]:
    """(start, end) seconds of every utterance the plan speaks (at full level: not a fading cue)."""
    return [(e["start"], e["start"] + e["duration"]) for e in plan["events"]
            if e["kind"] == "speech" and not (full_level_only and e.get("gain_db"))]


def cut(audio: np.ndarray, where: list[tuple[float, float]]) -> np.ndarray:
    return np.concatenate([audio[int(a * RATE): int(b * RATE)] for a, b in where])


def sounding(audio: np.ndarray, start: float, end: float, below_peak_db: float = 40.0) -> tuple[float, float]:
    """start..end trimmed to where the sound in it begins and ends: from the first to the last
    10 ms frame within `below_peak_db` of the stretch's loudest frame."""
    part = audio[int(start * RATE): int(end * RATE)]
    frames = len(part) // 441
    power = np.mean(np.square(part[: frames * 441].reshape(frames, -1), dtype=np.float64), axis=1)
    loud = np.flatnonzero(power > power.max() * 10 ** (-below_peak_db / 10))
    return start + loud[0] * 0.01, start + (loud[-1] + 1) * 0.01


def speech_lufs(audio: np.ndarray, plan: dict) -> float:
    """The voice's loudness: each utterance the plan places, from where it starts to sound to
    where it stops, cut out and joined, then metered."""
    return lufs(cut(audio, [sounding(audio, a, b) for a, b in spans(plan)]))


def quiet_stretches(plan: dict, margin: float = 2.0, shortest: float = 5.0) -> list[tuple[float, float]]:
    """Stretches with no event in them (and `margin` s clear of every event), at least
    `shortest` s long, inside the background's span: where the bed plays alone, undipped."""
    busy = sorted((e["start"], e["start"] + e["duration"]) for e in plan["events"])
    bed = plan["background"] or {"start": 0.0, "end": plan["duration"]}
    found, now = [], bed["start"]
    for start, end in busy + [(bed["end"], bed["end"])]:
        a, b = now + margin, min(start, bed["end"]) - margin
        if b - a >= shortest:
            found.append((a, b))
        now = max(now, end)
    return found


def crest_db(audio: np.ndarray) -> float:
    """Peak over RMS (dB) of the sounding part of a clip."""
    mono = audio.mean(axis=1) if audio.ndim == 2 else audio
    return float(20 * np.log10(np.abs(mono).max() / np.sqrt(np.mean(np.square(mono, dtype=np.float64)))))
