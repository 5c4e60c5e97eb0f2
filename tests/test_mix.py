"""The mix's generated sounds, the background's loop seam and the ducking curve, measured on
the arrays the mix makes (the rendered files are measured in test_render)."""

import wave

import numpy as np

from guidetrack.mix import BRIDGE, Drone, Ducker, LoopedFile, Ocean, _drone_loop, bowl, chime, voiced_spans
from guidetrack.script import Duck
from guidetrack.units import SAMPLE_RATE, to_samples


def peaks(audio: np.ndarray, count: int) -> list[float]:
    """The frequencies (Hz) of the strongest spectral peaks, strongest first."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)
    found = []
    for index in np.argsort(spectrum)[::-1]:
        if all(abs(freqs[index] - f) > 20 for f in found):
            found.append(float(freqs[index]))
        if len(found) == count:
            return found


def db(audio: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-20))


def max_step(audio: np.ndarray) -> float:
    return float(np.max(np.abs(np.diff(audio, axis=0))))


def test_bell_and_bowl_are_inharmonic_and_ring_out():
    for sound, low in ((chime, 196.0), (bowl, 196.0)):
        audio = sound(to_samples(6))
        strongest = sorted(peaks(audio[: SAMPLE_RATE], 4))
        ratios = [f / strongest[0] for f in strongest[1:]]
        # a struck bell or bowl: overtones that are not whole multiples of the lowest partial
        assert any(abs(r - round(r)) > 0.15 for r in ratios), (sound.__name__, strongest)
        assert strongest[0] >= low * 0.9
        # and it decays: the last second is far quieter than the first
        assert db(audio[-SAMPLE_RATE:]) < db(audio[:SAMPLE_RATE]) - 20
        assert abs(audio[0]) < 1e-3 and abs(audio[-1]) < 1e-3  # no click at either end


def test_drone_loops_without_a_seam():
    loop = _drone_loop()
    drone = Drone()
    audio = np.concatenate([drone.read(len(loop) - 1000), drone.read(2000)])
    seam = audio[len(loop) - 1000: len(loop) + 1000]
    # across the seam the wave moves no faster than anywhere inside the loop
    assert max_step(seam) <= max_step(loop) * 1.001
    assert abs(db(loop)) < 0.1  # unit RMS, so `level` sets it


def test_ocean_swells_slowly():
    ocean = Ocean()
    seconds = [ocean.read(SAMPLE_RATE) for _ in range(60)]
    levels = [db(s) for s in seconds]
    assert max(levels) - min(levels) > 6  # waves: it rises and falls...
    assert np.corrcoef(levels[:-1], levels[1:])[0, 1] > 0.5  # ...slowly: each second is like the last
    assert abs(db(np.concatenate(seconds))) < 1.5  # about unit RMS over a minute


def test_a_background_file_loops_without_a_click(tmp_path):
    """A 440 Hz tone cut at a point that is not a whole cycle: looped plainly, it would jump."""
    length = int(1.37 * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(SAMPLE_RATE)
        out.writeframes(tone.tobytes())
    assert max_step(np.concatenate([tone, tone]) / 32767.0) > 0.1  # the naive loop's jump
    looped = LoopedFile(str(path))
    audio = looped.read(4 * length)
    smooth = 2 * np.pi * 440 / SAMPLE_RATE * np.max(np.abs(audio))  # the steepest step of a sine
    assert max_step(audio) <= smooth * 1.01
    # equal-power crossfade: the seam is neither a gap nor a bump in level
    period = looped.period
    seam = audio[period - SAMPLE_RATE // 4: period + SAMPLE_RATE // 4]
    assert abs(db(seam) - db(audio)) < 3


def test_voiced_spans_join_words_and_split_phrases():
    rate = SAMPLE_RATE
    clip = np.zeros(3 * rate, dtype=np.float32)
    for start, end in ((0.1, 0.6), (0.7, 1.0), (1.6, 2.0)):  # 0.1 s between words, 0.6 s between phrases
        span = slice(int(start * rate), int(end * rate))
        clip[span] = 0.3 * np.sin(np.arange(span.stop - span.start))
    spans = voiced_spans(clip, threshold=0.01)
    assert [(round(a / rate, 2), round(b / rate, 2)) for a, b in spans] == [(0.1, 1.0), (1.6, 2.0)]
    assert BRIDGE < 0.6 * rate


def test_ducking_reaches_its_depth_before_speech_and_comes_back_smoothly():
    duck = Duck(depth_db=9.0, attack=to_samples(0.5), release=to_samples(1.5))
    speech = (to_samples(3), to_samples(5))
    ducker = Ducker([speech], duck)
    gain = ducker.gain(0, to_samples(10))[:, 0]
    in_db = 20 * np.log10(gain)
    s = SAMPLE_RATE
    assert np.allclose(in_db[: int(2.5 * s)], 0, atol=1e-6)  # untouched before the attack
    assert np.allclose(in_db[3 * s: 5 * s], -9, atol=1e-4)  # the full depth all through the speech
    assert np.allclose(in_db[int(6.5 * s):], 0, atol=1e-6)  # back after the release
    assert np.all(np.diff(in_db[int(2.5 * s): 3 * s]) <= 0) and np.all(np.diff(in_db[5 * s: int(6.5 * s)]) >= 0)
    assert max_step(in_db) < 9 / (0.5 * s) * 2  # a smooth curve: no step anywhere
    # blocks give the same curve as one long read
    pieces = np.concatenate([ducker.gain(b, s)[:, 0] if ducker.gain(b, s) is not None else np.ones(s)
                             for b in range(0, 10 * s, s)])
    assert np.array_equal(pieces, gain)


# ---------------------------------------------------------------- measured in rendered files


import pytest  # noqa: E402
from scipy.signal import butter, sosfilt  # noqa: E402

from helpers import RATE, decode, plan_json  # noqa: E402

HIGH_BAND = butter(8, [12_000, 16_000], btype="bandpass", fs=RATE, output="sos")


def band_db(audio: np.ndarray, start: float, end: float) -> float:
    """The level of 12-16 kHz in a stretch. espeak-ng speaks at 22.05 kHz, so its voice has
    nothing above 11 kHz: this band holds the background alone, even while the voice speaks
    (hibari's 24 kHz reaches into the filter's edge, so these scripts speak with espeak-ng)."""
    pad = RATE // 10  # the filter settles before the stretch is measured
    part = audio[max(int(start * RATE) - pad, 0): int(end * RATE), 0]
    return db(sosfilt(HIGH_BAND, part)[pad:])


DUCKED = """\
guidetrack: 1
title: Ducking
voice: calm
background: {sound: white-noise, level: -20, duck: {depth: 8, attack: 0.3s, release: 0.6s}}
steps:
  - pause: 3s
  - say: Let the shoulders soften and sink. [3s] Let the breath slow down.
  - pause: 3s
  - say: Notice the weight of the legs against the wall.
  - pause: 3s
"""


@pytest.mark.integration
def test_the_background_dips_under_speech_by_its_depth(gt, tmp_path):
    script = tmp_path / "duck.yaml"
    script.write_text(DUCKED)
    out = tmp_path / "duck.wav"
    gt("render", script, "-o", out, "--format", "wav", check=True)
    audio = decode(out)
    speech = [(e["start"], e["start"] + e["duration"]) for e in plan_json(gt, script)["events"]]
    assert len(speech) == 3
    during = [band_db(audio, start + 0.1, end - 0.1) for start, end in speech]
    # between phrases: after the release, before the next attack (one of them is the inline
    # pause inside a single `say`: ducking follows the speech, not the steps)
    quiet = [(0.5, speech[0][0] - 0.5)] + [(end + 0.8, nxt - 0.5) for (_, end), (nxt, _) in zip(speech, speech[1:], strict=False)]
    between = [band_db(audio, start, end) for start, end in quiet]
    assert all(q > 0.5 for q in (end - start for start, end in quiet))
    for level in during:
        assert 8 - 0.5 <= min(between) - level, (during, between)
        assert max(between) - level <= 8 + 1.5, (during, between)
    assert max(between) - min(between) < 1.0  # the bed comes all the way back each time


SEAMS = """\
guidetrack: 1
title: Seams
background: {sound: tone.wav, level: -12}
steps:
  - say: Breathe in. [1s] And out.
  - pause: 4s
  - say: Rest.
  - pause: 2s
"""


def write_tone(path, seconds: float, freq: float) -> None:
    t = np.arange(int(seconds * RATE)) / RATE
    samples = (0.5 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(RATE)
        out.writeframes(samples.tobytes())


@pytest.mark.integration
def test_no_click_at_clip_or_loop_seams(gt, tmp_path):
    write_tone(tmp_path / "tone.wav", 1.37, 220.0)  # loops every ~1.37 s, never on a whole cycle
    script = tmp_path / "seams.yaml"
    script.write_text(SEAMS)
    gt("render", script, "-o", tmp_path / "bed.wav", "--format", "wav", check=True)
    events = plan_json(gt, script)["events"]
    audio = decode(tmp_path / "bed.wav")[:, 0]
    # loop seams: away from speech the bed is the tone alone, and no sample steps further than
    # the steepest step of a sine of that amplitude
    quiet = np.ones(len(audio), bool)
    for e in events:
        quiet[max(int(e["start"] * RATE) - RATE // 20, 0): int((e["start"] + e["duration"]) * RATE) + RATE // 20] = False
    bed = audio[quiet]
    assert len(bed) > 4 * RATE
    steepest = 2 * np.pi * 220 / RATE * np.max(np.abs(bed))
    steps = np.abs(np.diff(audio))[quiet[1:] & quiet[:-1]]
    assert steps.max() <= steepest * 1.05, (steps.max(), steepest)
    # clip seams: without a bed, each utterance starts and ends from silence
    script.write_text(SEAMS.replace("background: {sound: tone.wav, level: -12}\n", ""))
    gt("render", script, "-o", tmp_path / "dry.wav", "--format", "wav", check=True)
    dry = decode(tmp_path / "dry.wav")[:, 0]
    for e in events:
        for at in (e["start"], e["start"] + e["duration"]):
            seam = round(at * RATE)
            around = dry[max(seam - 2, 0): seam + 2]  # the samples where silence meets the clip
            assert np.max(np.abs(around)) < 10 ** (-45 / 20), (e, at, np.max(np.abs(around)))


@pytest.mark.integration
def test_intro_and_outro(gt, tmp_path):
    from mutagen.id3 import ID3

    write_tone(tmp_path / "theme.wav", 3.0, 660.0)
    script = tmp_path / "episode.yaml"
    script.write_text("guidetrack: 1\ntitle: Episode\n"
                      "intro: {sound: theme.wav, say: Welcome to the studio.}\noutro: bowl\n"
                      "background: {sound: white-noise, level: -20}\n"
                      "steps:\n  - section: Practice\n    steps:\n      - say: Rest.\n      - pause: 3s\n")
    out = tmp_path / "episode.mp3"
    gt("render", script, "-o", out, check=True)
    plan = plan_json(gt, script)
    audio = decode(out)
    sound = [e for e in plan["events"] if e["kind"] == "sound"]
    assert [(e["start"], e["duration"]) for e in sound] == [(0.0, 3.0), (pytest.approx(plan["duration"] - 12), 12.0)]
    assert peaks(audio[int(0.5 * RATE): int(2.5 * RATE), 0], 1)[0] == pytest.approx(660, abs=3)
    assert peaks(audio[-12 * RATE: -8 * RATE, 0], 1)[0] == pytest.approx(196, abs=3)
    bed = plan["background"]
    assert bed["start"] > 3.0 and bed["end"] == pytest.approx(plan["duration"] - 12)
    # the bed plays between intro and outro only
    assert band_db(audio, 0.2, 2.8) < band_db(audio, bed["end"] - 2, bed["end"] - 0.5) - 30
    tags = ID3(out)
    chapters = [tags[f"CHAP:{e}"] for e in tags.getall("CTOC")[0].child_element_ids]
    assert [str(c.sub_frames["TIT2"]) for c in chapters] == ["Intro", "Practice", "Outro"]


@pytest.mark.parametrize("kind, slope", [("white-noise", 0.0), ("pink-noise", -3.0), ("brown-noise", -6.0)])
def test_a_noise_bed_has_its_colour_no_seam_and_independent_ears(kind, slope):
    """The generated noise is a loop: its spectrum falls by the colour's dB an octave (from 80 Hz
    to 2.5 kHz; brown's integrator flattens towards the top), the rumble under 10 Hz is cut, the loop runs into itself like anywhere else, and the
    two channels are uncorrelated."""
    from guidetrack.mix import NOISE_LOOP, NoiseBed, noise_loop

    loop = noise_loop(kind).astype(np.float64)
    assert np.sqrt(np.mean(loop**2)) == pytest.approx(1.0, abs=1e-3)
    power = np.abs(np.fft.rfft(loop)) ** 2
    hz = np.fft.rfftfreq(len(loop), 1 / 44_100)

    def band(low: float) -> float:
        return 10 * np.log10(power[(hz >= low) & (hz < 2 * low)].mean())

    for low in (80, 160, 320, 640, 1280):
        assert band(2 * low) - band(low) == pytest.approx(slope, abs=0.8), low
    assert band(5) < band(80) - 4 * slope - 8  # the high-pass: 8 dB under the colour's own at 5-10 Hz
    # the seam: the step from the last sample to the first is an ordinary step
    steps = np.abs(np.diff(loop))
    assert abs(loop[0] - loop[-1]) < np.percentile(steps, 99.9)
    bed = NoiseBed(kind)
    both = np.concatenate([bed.read(NOISE_LOOP // 3) for _ in range(4)])  # once round and more
    assert np.array_equal(both[NOISE_LOOP: NOISE_LOOP + 1000, 0], both[:1000, 0])  # it loops
    assert abs(np.corrcoef(both[:, 0], both[:, 1])[0, 1]) < 0.02  # the ears are independent


def test_a_sounds_loudness_is_metered_once_and_kept_by_its_samples(tmp_path, monkeypatch):
    """Where the sounds are kept, a loudness is remembered by the digest of the samples metered:
    the same sound is not metered again, a changed one is, and a damaged record is metered anew."""
    from guidetrack import mix

    metered = []

    def meter(blocks, channels):
        audio = np.concatenate(list(blocks()))
        metered.append(len(audio))
        return -20.0 + len(audio) / 1e6

    monkeypatch.setattr(mix, "_loudness", meter)
    monkeypatch.setattr(mix, "_KEPT_IN", [])
    tone = np.ones((1000, 2), np.float32) * 0.1
    assert mix._metered(lambda: [tone], 2) == pytest.approx(-19.999)  # nowhere to keep it: metered every time
    assert mix._metered(lambda: [tone], 2) == pytest.approx(-19.999) and len(metered) == 2
    mix.keep_sounds_in(tmp_path)
    for _ in range(3):
        assert mix._metered(lambda: [tone[:600], tone[600:]], 2) == pytest.approx(-19.999)
    assert len(metered) == 3
    assert mix._metered(lambda: [tone[:999]], 2) == pytest.approx(-19.999001) and len(metered) == 4
    assert mix._metered(lambda: [tone], 1) is not None and len(metered) == 5  # the channels are in the key
    kept = sorted((tmp_path / "levels").iterdir())
    assert len(kept) == 3
    for path in kept:
        path.write_text('{"lufs": "loud"}')
    assert mix._metered(lambda: [tone], 2) == pytest.approx(-19.999) and len(metered) == 6


def test_a_background_prepared_early_is_metered_once_for_levels(monkeypatch):
    """render makes and meters the background while the voice is spoken; `levels`, asking at
    the same moment, waits for that reading rather than making its own."""
    import threading

    from guidetrack import mix
    from guidetrack.script import Background

    metered = []
    started = threading.Event()

    def meter(blocks, channels):
        started.set()
        audio = np.concatenate(list(blocks()))
        metered.append(len(audio))
        return -30.0

    monkeypatch.setattr(mix, "_loudness", meter)
    monkeypatch.setattr(mix, "_KEPT_IN", [])
    mix._generated_bed_loudness.cache_clear()
    early = threading.Thread(target=mix.prepare_background, args=(Background("pink-noise"), 2))
    early.start()
    started.wait(10)
    assert mix._bed_loudness(Background("pink-noise"), 2) == -30.0
    early.join()
    assert metered == [mix.NOISE_PROBE]
    mix._generated_bed_loudness.cache_clear()


@pytest.mark.parametrize("channels", [2, 1])
def test_a_sound_metered_in_this_process_reads_as_ffmpegs_meter_reads_it(channels, monkeypatch):
    """The generated sounds (a noise bed whose ears differ, the ocean, a chime, a short breath
    tone padded to one block) are metered in this process, as the voice is: within 0.01 LU of
    ffmpeg's ebur128 on the very same samples. A sound longer than IN_PROCESS is ffmpeg's."""
    from guidetrack import mix
    from guidetrack.loudness import meter_pcm
    from guidetrack.script import Background

    def bed(sound, seconds):
        made = mix._bed(Background(sound))
        return mix.as_played(made.read(SAMPLE_RATE * seconds), channels)

    tone = mix.as_played(np.concatenate([mix.tone(SAMPLE_RATE // 4, "in"), np.zeros(SAMPLE_RATE // 5, np.float32)]),
                         channels)
    for name, audio in (("brown", bed("brown-noise", 20)), ("white", bed("white-noise", 20)),
                        ("ocean", bed("ocean", 30)), ("chime", mix.as_played(mix.chime(SAMPLE_RATE * 6), channels)),
                        ("tone", tone)):
        ours = mix._loudness(lambda audio=audio: [audio[: len(audio) // 2], audio[len(audio) // 2:]], channels)
        ffmpeg = meter_pcm([audio], channels).integrated
        assert ours is not None and ffmpeg is not None
        assert abs(ours - ffmpeg) <= 0.01, (name, ours, ffmpeg)
    read = []  # a longer sound than IN_PROCESS is not held: ffmpeg reads it
    monkeypatch.setattr(mix, "IN_PROCESS", SAMPLE_RATE)
    monkeypatch.setattr(mix, "meter_pcm", lambda blocks, channels: read.append(channels) or meter_pcm(blocks, channels))
    ring = mix.as_played(mix.chime(SAMPLE_RATE * 6), channels)
    assert mix._loudness(lambda: [ring[:SAMPLE_RATE], ring[SAMPLE_RATE:]], channels) == \
        meter_pcm([ring], channels).integrated and read == [channels]


def test_ducking_by_its_curves_is_the_formula_it_stands_for():
    """The gain, read from the ramps worked out once, is the raised-cosine formula evaluated
    sample by sample: the deeper of two stretches' curves where they meet, any block size."""
    from guidetrack.units import db_to_gain

    duck = Duck(depth_db=7.5, attack=to_samples(0.4), release=to_samples(1.2))
    spans = [(to_samples(1.0), to_samples(2.5)), (to_samples(3.1), to_samples(3.3)), (to_samples(4.0), to_samples(9.0))]
    ducker = Ducker(spans, duck)
    index = np.arange(to_samples(11), dtype=np.float64)
    amount = np.zeros(len(index))
    for start, end in spans:
        rise = np.clip((index - (start - duck.attack)) / duck.attack, 0, 1)
        fall = np.clip((end + duck.release - index) / duck.release, 0, 1)
        amount = np.maximum(amount, np.minimum(rise, fall))
    expected = 10 ** (-duck.depth_db * (0.5 - 0.5 * np.cos(np.pi * amount)) / 20)
    for block in (to_samples(11), 44_100, 1_000, 777):
        found = np.concatenate([g[:, 0] if (g := ducker.gain(b, min(block, len(index) - b))) is not None
                                else np.ones(min(block, len(index) - b)) for b in range(0, len(index), block)])
        assert np.allclose(found, expected, rtol=0, atol=2e-7)
    assert ducker.gain(to_samples(9) + duck.release, 100) is None
    assert min(found) == pytest.approx(db_to_gain(-7.5), abs=1e-6)
    sharp = Ducker(spans, Duck(depth_db=6.0, attack=0, release=0))  # no ramps: a step at each edge
    assert np.array_equal(sharp.gain(0, to_samples(3))[:, 0], np.where(
        (index[: to_samples(3)] >= spans[0][0]) & (index[: to_samples(3)] < spans[0][1]),
        np.float32(db_to_gain(-6.0)), np.float32(1.0)))


def test_a_noise_loop_is_kept_read_back_and_made_again_when_damaged(tmp_path, monkeypatch):
    from guidetrack import mix

    made = []

    def make(kind, seed=mix.NOISE_SEED):
        made.append(kind)
        loop = np.arange(mix.NOISE_LOOP, dtype=np.float32) / mix.NOISE_LOOP
        loop.flags.writeable = False
        return loop

    monkeypatch.setattr(mix, "NOISE_LOOP", 1024)
    monkeypatch.setattr(mix, "_noise_loop", make)
    monkeypatch.setattr(mix, "_HELD", {})
    monkeypatch.setattr(mix, "_KEPT_IN", [])
    mix.keep_sounds_in(tmp_path)
    first = mix.noise_loop("pink-noise")
    mix._HELD.clear()
    again = mix.noise_loop("pink-noise")  # read from where it is kept, not made
    assert made == ["pink-noise"] and np.array_equal(first, again) and not again.flags.writeable
    (kept,) = (tmp_path / "beds").iterdir()
    kept.write_bytes(kept.read_bytes()[:-1] + b"x")
    mix._HELD.clear()
    assert np.array_equal(mix.noise_loop("pink-noise"), first) and len(made) == 2  # damaged: made again
    mix._HELD.clear()
    mix.noise_loop("pink-noise")
    assert len(made) == 2  # and the damaged one was replaced


def test_a_chime_is_made_once_and_read_back_the_same(tmp_path, monkeypatch):
    """A chime (0.1 s to make) is kept beside the noise loops and read back: the same samples."""
    from guidetrack import mix

    monkeypatch.setattr(mix, "_KEPT_IN", [])
    mix.chime.cache_clear()
    made = mix.chime(30_000)  # nothing kept: made
    mix.keep_sounds_in(tmp_path)
    mix.chime.cache_clear()
    first = mix.chime(30_000)  # made, and kept
    (kept,) = (tmp_path / "beds").glob("chime-30000-*.f32")
    mix.chime.cache_clear()
    monkeypatch.setattr(mix, "_struck", lambda *args, **kwargs: pytest.fail("made again, not read back"))
    again = mix.chime(30_000)
    assert np.array_equal(made, first) and np.array_equal(first, again) and not again.flags.writeable
    assert kept.stat().st_size == 4 * 30_000 + 32
    mix.chime.cache_clear()
