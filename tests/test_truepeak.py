"""The true-peak meter and limiter (guidetrack.truepeak), against brute force and against the
tests' own meter (tests/meter.py: scipy's resample_poly, a different interpolator)."""

from __future__ import annotations

import numpy as np
import pytest

from guidetrack import truepeak
from meter import true_peak as independent_true_peak

RATE = 44_100


def speechlike(seconds: float, seed: int) -> np.ndarray:
    """Syllable-like bursts of gliding harmonics and noise, with clicks, in stereo."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 30))
    syllables = np.clip(np.sin(2 * np.pi * 3.1 * t), 0, None) ** 2
    audio = 0.25 * voice * syllables + 0.02 * rng.standard_normal(n)
    audio[rng.integers(0, n, 20)] += rng.choice([-0.9, 0.9], 20)  # clicks: peaks between samples
    return np.stack([audio, np.roll(audio, 37) * 0.8], axis=1).astype(np.float32)


def test_a_peak_between_samples_is_found():
    t = np.arange(RATE)
    # a quarter of the rate at 45 degrees: every sample at 0.707 of the wave's peak
    between = np.sin(2 * np.pi * t / 4 + np.pi / 4).astype(np.float32)[2000:-2000]
    assert float(np.abs(between).max()) == pytest.approx(0.7071, abs=1e-3)
    assert 20 * np.log10(float(truepeak.interval_peaks(between)[100:-100].max())) == pytest.approx(0.0, abs=0.02)
    assert truepeak.true_peak(between) >= 0.999
    fade = np.minimum(1.0, np.minimum(t, len(t) - 1 - t) / 2000)  # (a sine cut off abruptly rings at its ends)
    for hz in (1000, 5000, 12000, 15000):  # a sine reads its own peak, within the interpolator's ripple
        sine = (0.5 * fade * np.sin(2 * np.pi * hz * t / RATE + 0.3)).astype(np.float32)
        assert 20 * np.log10(truepeak.true_peak(sine) / 0.5) == pytest.approx(0.0, abs=0.1)
    assert truepeak.true_peak(np.zeros((0, 2), np.float32)) == 0.0
    assert truepeak.true_peak(np.zeros((1000, 2), np.float32)) == 0.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_looking_only_where_a_peak_can_be_finds_what_looking_everywhere_finds(seed):
    audio = speechlike(7.3, seed)
    everywhere = float(truepeak.interval_peaks(audio).max())
    assert truepeak.true_peak(audio) == everywhere
    # and what a different meter finds: within the two interpolators' difference
    assert 20 * np.log10(everywhere) == pytest.approx(independent_true_peak(audio), abs=0.3)
    # a stream read in blocks of any size: the same
    for size in (1, 5, 1000, 44_100):
        meter = truepeak.PeakMeter()
        for at in range(0, len(audio) if size > 1 else 3000, size):
            meter.add(audio[at: at + size])
        if size > 1:
            assert meter.close() == everywhere, size
        else:
            assert meter.close() == float(truepeak.interval_peaks(audio[:3000], ).max())


def limited(audio: np.ndarray, gain_db: float, ceiling_db: float, size: int) -> tuple[np.ndarray, int]:
    limiter = truepeak.Limiter(10 ** (gain_db / 20), 10 ** (ceiling_db / 20))
    out = np.concatenate(list(limiter(audio[at: at + size] for at in range(0, len(audio), size))))
    return out, limiter.limited


def test_the_limiter_holds_the_true_peak_and_leaves_the_rest_alone():
    audio = speechlike(12.0, 4)
    gain_db = -1.2 - 20 * np.log10(truepeak.true_peak(audio)) + 4.0  # the loudest 4 dB over the ceiling
    out, count = limited(audio, gain_db, -1.2, 88_200)
    assert out.shape == audio.shape and count > 0
    assert 20 * np.log10(truepeak.true_peak(out)) <= -1.2 + 1e-4
    assert independent_true_peak(out) <= -1.2 + 0.3  # another interpolator agrees, within their difference
    # only around the peaks: far from any, every sample is the input times the gain, exactly
    scale = np.float32(10 ** (gain_db / 20))
    touched = np.flatnonzero(np.any(out != audio * scale, axis=1))
    assert 0 < len(touched) < 0.5 * len(audio)
    assert count == len(np.unique(touched))
    # the same samples whatever the blocks' sizes
    for size in (1000, 4410, 123_457):
        again, _ = limited(audio, gain_db, -1.2, size)
        assert np.array_equal(again, out), size
    # under the ceiling: nothing but the gain
    calm, count = limited(audio, gain_db - 6.0, -1.2, 88_200)
    assert count == 0 and np.array_equal(calm, audio * np.float32(10 ** ((gain_db - 6.0) / 20)))


def test_the_limiters_gain_is_smooth_and_never_more_than_a_sample_needs():
    rng = np.random.default_rng(0)
    needed = np.ones(30_000, np.float32)
    where = rng.integers(1000, 29_000, 40)
    needed[where] = rng.uniform(0.4, 1.0, 40).astype(np.float32)
    gain = truepeak._gain(needed)
    assert gain.shape == needed.shape and np.all(gain <= needed + 1e-6)
    steps = np.abs(np.diff(gain))
    assert steps.max() < 0.6 / (truepeak.LIMIT_SPAN / 8)  # no sample-to-sample jump: it glides
    assert gain[: where.min() - truepeak.LIMIT_SPAN].min() == 1.0  # untouched far before the first
