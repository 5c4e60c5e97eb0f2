"""Levels anchored on the voice, measured on real renders (espeak-ng, ffmpeg's encoders) with an
independent meter (pyloudnorm, and a 4x oversampled true peak): the voice at its target, a bed's
`level` as loudness under it for every kind of bed, the true peak under -1 dBTP after the codec,
the voice's crest factor kept, and the printed figures those of the file."""

from __future__ import annotations

import json
import re
import subprocess
import wave

import numpy as np
import pytest

from helpers import plan_json, seed_cache
from meter import RATE, crest_db, cut, decode, lufs, quiet_stretches, speech_lufs, true_peak

integration = pytest.mark.integration

SPEECH = """\
  - say: Lie down on your back and let the floor hold you. Breathe slowly, and let the shoulders soften.
  - say: Now rest here, and let the breath come and go on its own.
  - hold: {hold}
  - say: Breathe in
  - pause: 2s
  - say: Slowly come back. Roll onto your side and rest there for a moment before you sit up.
"""


def script(tmp_path, name: str, head: str, hold: str = "40s") -> Path:  # noqa: F821
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"guidetrack: 1\ntitle: {name}\n{head}steps:\n" + SPEECH.format(hold=hold))
    return path


def rendered(gt, path, *args):
    """(what `render --json` printed for the file, the plan, the decoded file)."""
    out = path.with_suffix(".mp3")
    report = json.loads(gt("render", path, "-o", out, "--json", *args, check=True).stdout)[0]
    plan = plan_json(gt, path)
    return report, plan, decode(out, channels=1 if "--mono" in args else 2)


def music(path) -> None:
    """A short piece of music as an MP3: plucked notes of an arpeggio over a soft pad, with a
    louder middle, so its loudness moves as music does."""
    t = np.arange(24 * RATE) / RATE
    out = 0.05 * (np.sin(2 * np.pi * 110 * t) + 0.5 * np.sin(2 * np.pi * 165 * t))
    for index, start in enumerate(np.arange(0, 24, 0.5)):
        freq = (220, 277.2, 329.6, 440, 329.6, 277.2)[index % 6]
        note = t >= start
        swell = 1.0 + (8 <= start < 16)  # the middle eight seconds are twice as loud
        out += note * swell * 0.3 * np.exp(-3 * np.clip(t - start, 0, None)) * np.sin(2 * np.pi * freq * t)
    pcm = (np.repeat((out / np.abs(out).max() * 0.7)[:, None], 2, axis=1) * 32767).astype("<i2")
    with wave.open(str(path.with_suffix(".wav")), "wb") as file:
        file.setnchannels(2)
        file.setsampwidth(2)
        file.setframerate(RATE)
        file.writeframes(pcm.tobytes())
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(path.with_suffix(".wav")), str(path)], check=True)


def check_promise(report, plan, audio, target: float) -> float:
    """The voice at its target, the true peak under -1 dBTP, and the printed figures those of
    the file, all by the independent meter; returns the voice's measured loudness."""
    voice = speech_lufs(audio, plan)
    peak = true_peak(audio)
    assert abs(voice - target) <= 0.5, (voice, target)
    assert peak <= -1.0, peak
    assert abs(report["speech_lufs"] - voice) <= 0.2, (report["speech_lufs"], voice)
    assert abs(report["integrated_lufs"] - lufs(audio)) <= 0.2, (report["integrated_lufs"], lufs(audio))
    assert abs(report["true_peak_dbtp"] - peak) <= 0.2, (report["true_peak_dbtp"], peak)
    assert report["problems"] == []
    return voice


@integration
def test_speech_alone_is_at_the_target(gt, tmp_path):
    report, plan, audio = rendered(gt, script(tmp_path, "speech", ""))
    check_promise(report, plan, audio, -16.0)
    assert report["target_lufs"] == -16.0


@integration
@pytest.mark.parametrize("bed", ["brown-noise", "pink-noise", "white-noise", "ocean", "drone", "music.mp3"])
def test_a_bed_sits_at_its_level_under_the_voice(gt, tmp_path, bed):
    if bed.endswith(".mp3"):
        music(tmp_path / bed)
    report, plan, audio = rendered(gt, script(tmp_path, "bed", f"background: {{sound: {bed}, level: -20}}\n"))
    voice = check_promise(report, plan, audio, -16.0)
    alone = quiet_stretches(plan)
    assert sum(b - a for a, b in alone) >= 30
    assert abs(lufs(cut(audio, alone)) - voice - (-20)) <= 1.0, lufs(cut(audio, alone)) - voice


@pytest.mark.slow(50)
@integration
def test_a_twenty_minute_class_of_holds_over_the_ocean(gt, tmp_path):
    path = tmp_path / "restorative.yaml"
    holds = """
  - say: Settle into the next shape. Let the props hold you, and let the breath slow.
  - hold: {for: 5m, min: 2m, max: 8m, reminders: [Soften the jaw., Let the belly rise and fall.]}
""" * 3
    path.write_text("guidetrack: 1\ntitle: Restorative\nduration: 20m\n"
                    "background: {sound: ocean, level: -20, fade_in: 10s, fade_out: 10s}\nsteps:"
                    + holds + "  - say: Slowly come back, and rest on your side before you sit up.\n")
    report, plan, audio = rendered(gt, path)
    assert len(audio) == 20 * 60 * RATE
    voice = check_promise(report, plan, audio, -16.0)
    alone = quiet_stretches(plan, shortest=30)
    assert sum(b - a for a, b in alone) > 15 * 60  # mostly the ocean alone
    assert abs(lufs(cut(audio, alone)) - voice - (-20)) <= 1.0


@pytest.mark.slow(70)
@integration
def test_an_hour_of_sleep_over_a_drone(gt, tmp_path):
    """Mono, to keep the suite quick; `scripts/bench` renders eight hours in stereo."""
    path = tmp_path / "sleep.yaml"
    path.write_text("""\
guidetrack: 1
title: Sleep
loudness: sleep
duration: 1h
background: {sound: drone, fade_in: 20s, fade_out: 30s}
steps:
  - say: Lie down and let the day go. There is nothing left to do tonight.
  - breathe: {pattern: relax, cycles: 4, cue: words}
  - hold: {for: 50m, min: 10m, max: 2h, reminders: [Let the body grow heavy., Rest., Sleep now.]}
""")
    report, plan, audio = rendered(gt, path, "--mono")
    assert len(audio) == 3600 * RATE
    voice = check_promise(report, plan, audio, -25.0)  # the sleep preset: a quiet voice (-22 in stereo)
    alone = quiet_stretches(plan, shortest=60)
    assert sum(b - a for a, b in alone) > 50 * 60
    assert abs(lufs(cut(audio, alone)) - voice - (-24)) <= 1.0  # and its quiet bed, 24 LU under


def utterance_crests(plan: dict, audio: np.ndarray, gt) -> dict[str, tuple[float, float]]:
    """For each utterance at full level: its crest factor in the file minus the clip's own, and
    how far (dB) the clip's peak would stand over -1 dBTP at the level it plays in the file. The
    clip is the one the render used, read from the clip cache as `guidetrack say` reads it (the
    default voice, which these scripts speak with), and made 16-bit as `say` writes it."""
    from guidetrack.script import DEFAULT_VOICE, load_profile
    from guidetrack.speech import ClipCache, Speaker

    speaker = Speaker(load_profile(DEFAULT_VOICE), ClipCache(gt.cache))
    change = {}
    for event in plan["events"]:
        if event["kind"] != "speech" or event.get("gain_db") or event["text"] in change:
            continue
        said = speaker.clip(event["text"])
        samples = (np.clip(said, -1, 1) * 32767).astype("<i2").astype(np.float64)
        inside = audio[int(event["start"] * RATE): int((event["start"] + event["duration"]) * RATE)]
        samples /= 32768
        level = 10 * np.log10(np.mean(np.square(inside.mean(axis=1), dtype=np.float64)) / np.mean(samples**2))
        over = max(0.0, 20 * np.log10(np.abs(samples).max()) + level - (-1.0))
        change[event["text"]] = (crest_db(inside) - crest_db(samples), over)
    assert speaker.cache.misses == 0  # every clip the render's, none spoken again
    return change


@integration
def test_the_voice_keeps_its_crest_factor(gt, tmp_path):
    """The limiter takes only what stands over -1 dBTP. At -23 LUFS that is nothing: every
    utterance keeps its crest factor within 1 dB. At the podcast target espeak-ng's loudest
    syllables stand up to about 2.5 dB over it (its peaks are 17 dB over its loudness): the
    limiter takes that from them, and less than 1 dB more; cues like "Breathe in" are untouched."""
    report, plan, audio = rendered(gt, script(tmp_path, "quiet", "loudness: broadcast\n"))
    check_promise(report, plan, audio, -23.0)
    assert all(abs(c) <= 1.0 for c, _ in utterance_crests(plan, audio, gt).values())
    report, plan, audio = rendered(gt, script(tmp_path, "crest", "background: {sound: pink-noise, level: -20}\n"))
    change = utterance_crests(plan, audio, gt)
    assert abs(change["Breathe in"][0]) <= 1.0, change
    for crest, over in change.values():
        assert -(over + 1.0) <= crest <= 1.0, change


@integration
def test_the_command_line_loudness_wins_over_the_scripts(gt, tmp_path):
    """A script that asks for broadcast loudness, rendered with Insight Timer's preset: the voice
    at -16 LUFS in an MP3 at 48 kHz. (tests/test_render.py renders every format.)"""
    path = script(tmp_path, "insight", "background: {sound: brown-noise, level: -18}\nloudness: broadcast\n")
    report, plan, audio = rendered(gt, path, "--loudness", "insight-timer")
    probed = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=sample_rate", "-of", "csv=p=0",
                             str(path.with_suffix(".mp3"))], capture_output=True, text=True, check=True).stdout
    assert int(probed.split()[0]) == 48_000
    check_promise(report, plan, audio, -16.0)


@integration
def test_a_forged_remembered_gain_is_not_trusted(gt, tmp_path):
    """An infinite gain in the gain cache once made full-scale noise. Now a remembered value is
    checked (the unit tests below try many forgeries) and the file measured all the same."""
    path = script(tmp_path, "forged", "background: {sound: white-noise, level: -20}\n")
    cache = seed_cache(tmp_path / "cache", path, gt.cache)  # its own, to forge its remembered gain
    gt("render", path, "-o", tmp_path / "a.mp3", cache=cache, check=True)
    (state,) = (cache / "gains").iterdir()
    state.write_text(json.dumps({**json.loads(state.read_text()), "gain_db": float("inf")}))
    out = tmp_path / "b.mp3"
    report = json.loads(gt("render", path, "-o", out, "--json", cache=cache, check=True).stdout)[0]
    check_promise(report, plan_json(gt, path, cache=cache), decode(out), -16.0)


@integration
def test_loudness_in_a_script_and_its_mistakes(gt, tmp_path):
    path = script(tmp_path, "typo", "loudness: sleepy\n")
    result = gt("validate", path)
    assert result.returncode == 2
    assert "typo.yaml:3:" in result.stderr and "did you mean 'sleep'" in result.stderr
    path = script(tmp_path, "loud", "loudness: -2\n")
    assert "between -70 and -5 LUFS" in gt("validate", path).stderr
    result = gt("render", script(tmp_path, "ok", ""), "--loudness", "podcats")
    assert result.returncode == 2 and "did you mean 'podcast'" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- pure logic


def test_loudness_values_and_presets():
    from guidetrack.loudness import parse_loudness, target_for

    assert parse_loudness(-16) == -16.0 and parse_loudness("-18.5 LUFS") == -18.5
    assert parse_loudness(" Sleep ") == "sleep"
    for bad, says in [("sleepy", "did you mean 'sleep'"), (-3, "between -70 and -5"), (True, "not a loudness"),
                      (float("nan"), "out of range"), ("loud", "podcast, broadcast, sleep, insight-timer")]:
        with pytest.raises(ValueError, match=re.escape(says)):
            parse_loudness(bad)
    assert target_for(None, 2).speech_lufs == -16.0 and target_for(None, 1).speech_lufs == -19.0
    assert target_for(-20.0, 1).speech_lufs == -20.0  # a number is taken as it is
    sleep = target_for("sleep", 2)
    assert (sleep.speech_lufs, sleep.bed_db) == (-22.0, -24.0)
    assert target_for("insight-timer", 2).sample_rate == 48_000


def test_gating_follows_bs1770():
    from guidetrack.loudness import gated

    assert gated(np.array([-80.0, -90.0])) is None  # under the absolute gate: silence
    assert gated(np.array([-20.0] * 10)) == pytest.approx(-20.0)
    # a block 10 LU under the mean of the rest does not count; one 5 LU under does
    assert gated(np.array([-20.0] * 9 + [-35.0])) == pytest.approx(-20.0)
    both = gated(np.array([-20.0, -25.0]))
    assert both == pytest.approx(10 * np.log10((10 ** -2 + 10 ** -2.5) / 2))


def test_a_remembered_gain_is_checked_before_it_is_used(tmp_path):
    from guidetrack.files import checked_json
    from guidetrack.loudness import Figures
    from guidetrack.render import _Remembered

    good = _Remembered(3.5, -1.2, "a" * 64, Figures(-16.0, -17.0, 5.0, -1.5))
    path = tmp_path / "state.json"
    path.write_bytes(good.to_bytes())
    assert _Remembered.read(path) == good
    quiet = _Remembered(-50.0, -1.2, "a" * 64, Figures(-70.0, -75.0, 5.0, -55.0))  # --loudness -70
    path.write_bytes(quiet.to_bytes())
    assert _Remembered.read(path) == quiet
    body = json.loads(good.to_bytes())

    def forged(**changes) -> bytes:
        data = {key: value for key, value in body.items() if key != "check"}
        data.update(changes)
        return checked_json(data)

    for damaged in [b'{"gain_db": Infinity}', b"not json", b"", b"[]",
                    good.to_bytes().replace(b"3.5", b"9.5"),  # a changed value without its checksum
                    forged(gain_db=float("inf")), forged(gain_db=1e308), forged(gain_db=float("nan")),
                    forged(gain_db="3"), forged(ceiling_db=0.0), forged(sha256="../x"),
                    forged(figures={**body["figures"], "true_peak_dbtp": float("nan")}),
                    forged(figures={**body["figures"], "speech_lufs": "loud"})]:
        path.write_bytes(damaged)
        assert _Remembered.read(path) is None, damaged


def test_a_variant_can_set_its_own_loudness(tmp_path):
    from guidetrack.script import load

    path = tmp_path / "s.yaml"
    path.write_text("guidetrack: 1\ntitle: T\nloudness: -18\nvariants:\n  day: {}\n  night: {loudness: sleep}\n"
                    "steps:\n  - say: Rest.\n")
    assert load(path, "day").loudness == -18.0 and load(path, "night").loudness == "sleep"


def test_two_sounds_of_one_file_at_two_levels_keep_their_own_levels(tmp_path):
    from guidetrack.mix import sound_key
    from guidetrack.plan import Event

    assert sound_key(Event(0, 100, "sound", "bell.wav", -6.0)) != sound_key(Event(500, 100, "sound", "bell.wav", -20.0))


def test_the_meters_report_is_read_past_a_line_it_cannot_read():
    from guidetrack.loudness import _Report

    lines = [b"[x] lavfi.r128.M=garbled\n", *(b"[x] lavfi.r128.M=-20.000\n" for _ in range(8)),
             b"[x] lavfi.r128.M=nan\n", b"    LRA:         3.1 LU\n"]
    reading = _Report(iter(lines)).reading(["ffmpeg"])
    assert len(reading.blocks) == 7 and reading.integrated == pytest.approx(-20.0) and reading.lra == 3.1


def test_the_meter_is_pyloudnorms():
    """tests/meter.py's `lufs` does pyloudnorm's block loop at once: it must give pyloudnorm's
    own figure (speech-like bursts and silence, stereo and mono, odd lengths)."""
    import pyloudnorm

    from meter import lufs as fast

    rng = np.random.default_rng(7)
    t = np.arange(int(RATE * 12.3)) / RATE
    bursts = (np.sin(t * 1.3) > 0.2) * (0.5 + 0.4 * np.sin(t * 7))
    stereo = np.stack([bursts * rng.standard_normal(len(t)) * 0.1, bursts * np.sin(2 * np.pi * 300 * t) * 0.3], 1)
    for audio in (stereo.astype(np.float32), stereo[:, 0].astype(np.float32), stereo[: int(RATE * 0.45)],
                  np.zeros((RATE, 2), np.float32)):
        expected = pyloudnorm.Meter(RATE).integrated_loudness(audio.astype(np.float64))
        assert fast(audio) == pytest.approx(expected, abs=1e-9) if np.isfinite(expected) else fast(audio) == expected


def test_the_k_weighted_energy_is_the_filter_run_sample_by_sample():
    """The FFT's K-weighting equals BS.1770's two biquads run sample by sample (scipy), and the
    loudness read from its frames is pyloudnorm's, to the difference of their filters' rounding."""
    from scipy.signal import lfilter

    from guidetrack.loudness import k_weighted_energy, k_weighting, loudness_of_energy, meter_pcm

    rng = np.random.default_rng(3)
    t = np.arange(int(RATE * 7.3)) / RATE
    speechlike = ((np.sin(t * 2.1) > -0.3) * rng.standard_normal(len(t)) * 0.2
                  + 0.3 * np.sin(2 * np.pi * 55 * t) * (t > 5)).astype(np.float32)  # a low hum the high-pass cuts
    for audio in (speechlike, speechlike[:441 * 45 + 17], np.zeros(RATE, np.float32)):
        filtered = audio.astype(np.float64)
        for numerator, denominator in k_weighting(RATE):
            filtered = lfilter(numerator, denominator, filtered)
        whole = len(audio) // 441 * 441
        expected = np.square(filtered[:whole]).reshape(-1, 441).sum(axis=1)
        found = k_weighted_energy(audio, 441)
        assert found.shape == expected.shape
        assert np.allclose(found, expected, rtol=1e-5, atol=1e-9 * max(expected.max(), 1e-12))
    found = loudness_of_energy(k_weighted_energy(speechlike, 441), 441)
    assert found == pytest.approx(meter_pcm([speechlike], 1).integrated, abs=0.002)  # the meter guidetrack reads files with
    assert found == pytest.approx(lufs(speechlike), abs=0.1)  # pyloudnorm: its shelf is a little other
    assert loudness_of_energy(k_weighted_energy(np.zeros(RATE, np.float32), 441), 441) is None
    with pytest.raises(ValueError):
        loudness_of_energy(np.ones(100), 400)  # 400 samples do not divide 100 ms


def test_the_voice_is_read_from_its_clips_as_the_meter_reads_it_joined():
    """The voice's loudness from its clips' kept energies equals ffmpeg's meter (and pyloudnorm)
    on the utterances cut out and joined, spans of two clips at odd offsets included."""
    from guidetrack.loudness import meter_pcm
    from guidetrack.mix import voice_loudness
    from guidetrack.plan import Event, Kind
    from guidetrack.speech import ClipLevels

    rng = np.random.default_rng(11)

    def utterance(seconds: float, level: float) -> np.ndarray:
        t = np.arange(int(RATE * seconds)) / RATE
        words = (np.sin(2 * np.pi * 1.7 * t) > -0.5) * (0.6 + 0.4 * np.sin(2 * np.pi * 3.1 * t))
        sound = words * (np.sin(2 * np.pi * 190 * t) + 0.3 * rng.standard_normal(len(t))) * level
        return np.pad(sound, (2205, 3000)).astype(np.float32)

    clips = {f"line {i}": utterance(s, g) for i, (s, g) in enumerate([(2.3, 0.2), (3.1, 0.05), (1.7, 0.3),
                                                                      (4.4, 0.1)])}
    starts = [RATE, RATE * 5 + 123, RATE * 5 + 123 + len(clips["line 1"]) + 2999, RATE * 13 + 7]
    events = [Event(start, len(clips[text]), Kind.SPEECH, text) for start, text in zip(starts, clips, strict=True)]
    # each from where it sounds to where it stops; the second and third, a breath apart, as one
    spans = [(events[0].start + 2205, events[0].start + len(clips["line 0"]) - 3000),
             (events[1].start + 2205, events[2].start + len(clips["line 2"]) - 3000),
             (events[3].start + 1764, events[3].start + len(clips["line 3"]) - 441 * 7)]
    track = np.zeros(starts[-1] + len(clips["line 3"]), np.float32)
    for event in events:
        track[event.start: event.start + event.length] += clips[event.text]
    joined = np.concatenate([track[start:end] for start, end in spans])
    measured = {text: ClipLevels.of(clip) for text, clip in clips.items()}
    for channels, added in ((1, 0.0), (2, 10 * np.log10(2))):
        found = voice_loudness(spans, events, measured.__getitem__, channels)
        assert found == pytest.approx(meter_pcm([joined], 1).integrated + added, abs=0.01)
        assert found == pytest.approx(lufs(joined) + added, abs=0.1)  # pyloudnorm counts a part block
