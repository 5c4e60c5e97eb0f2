"""Levels anchored on the voice, measured on real renders (espeak-ng, ffmpeg's encoders) with an
independent meter (pyloudnorm, and a 4x oversampled true peak): the voice at its target, a bed's
`level` as loudness under it for every kind of bed, the true peak under -1 dBTP after the codec,
the voice's crest factor kept, and the printed figures those of the file."""

from __future__ import annotations

import json
import subprocess
import wave

import numpy as np
import pytest

from meter import RATE, crest_db, cut, decode, lufs, quiet_stretches, speech_lufs, true_peak

pytestmark = pytest.mark.integration

SPEECH = """\
  - say: Lie down on your back and let the floor hold you. Breathe slowly, and let the shoulders soften.
  - say: Now rest here, and let the breath come and go on its own.
  - hold: {hold}
  - say: Breathe in
  - pause: 2s
  - say: Slowly come back. Roll onto your side and rest there for a moment before you sit up.
"""


def script(tmp_path, name: str, head: str, hold: str = "40s") -> "Path":  # noqa: F821
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"guidetrack: 1\ntitle: {name}\n{head}steps:\n" + SPEECH.format(hold=hold))
    return path


def rendered(gt, path, *args):
    """(what `render --json` printed for the file, the plan, the decoded file)."""
    out = path.with_suffix(".mp3")
    report = json.loads(gt("render", path, "-o", out, "--json", *args, check=True).stdout)[0]
    plan = json.loads(gt("plan", path, "--json", check=True).stdout)
    return report, plan, decode(out)


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


def test_speech_alone_is_at_the_target(gt, tmp_path):
    report, plan, audio = rendered(gt, script(tmp_path, "speech", ""))
    check_promise(report, plan, audio, -16.0)
    assert report["target_lufs"] == -16.0


@pytest.mark.parametrize("bed", ["brown-noise", "pink-noise", "white-noise", "ocean", "drone", "music.mp3"])
def test_a_bed_sits_at_its_level_under_the_voice(gt, tmp_path, bed):
    if bed.endswith(".mp3"):
        music(tmp_path / bed)
    report, plan, audio = rendered(gt, script(tmp_path, "bed", f"background: {{sound: {bed}, level: -20}}\n"))
    voice = check_promise(report, plan, audio, -16.0)
    alone = quiet_stretches(plan)
    assert sum(b - a for a, b in alone) >= 30
    assert abs(lufs(cut(audio, alone)) - voice - (-20)) <= 1.0, lufs(cut(audio, alone)) - voice


def test_a_twenty_minute_class_of_holds_over_the_ocean(gt, tmp_path):
    path = tmp_path / "restorative.yaml"
    holds = "".join(f"""
  - say: Settle into the next shape. Let the props hold you, and let the breath slow.
  - hold: {{for: 5m, min: 2m, max: 8m, reminders: [Soften the jaw., Let the belly rise and fall.]}}
""" for _ in range(3))
    path.write_text("guidetrack: 1\ntitle: Restorative\nduration: 20m\n"
                    "background: {sound: ocean, level: -20, fade_in: 10s, fade_out: 10s}\nsteps:"
                    + holds + "  - say: Slowly come back, and rest on your side before you sit up.\n")
    report, plan, audio = rendered(gt, path)
    assert len(audio) == 20 * 60 * RATE
    voice = check_promise(report, plan, audio, -16.0)
    alone = quiet_stretches(plan, shortest=30)
    assert sum(b - a for a, b in alone) > 15 * 60  # mostly the ocean alone
    assert abs(lufs(cut(audio, alone)) - voice - (-20)) <= 1.0


def test_an_hour_of_sleep_over_a_drone(gt, tmp_path):
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
    report, plan, audio = rendered(gt, path)
    assert len(audio) == 3600 * RATE
    voice = check_promise(report, plan, audio, -22.0)  # the sleep preset: a quiet voice
    alone = quiet_stretches(plan, shortest=60)
    assert sum(b - a for a, b in alone) > 50 * 60
    assert abs(lufs(cut(audio, alone)) - voice - (-24)) <= 1.0  # and its quiet bed, 24 LU under


def utterance_crests(plan: dict, audio: np.ndarray, gt, tmp_path) -> dict[str, float]:
    """For each utterance at full level: its crest factor in the file minus the clip's own,
    the clip spoken again by `guidetrack say` (the same engine and voice: the same samples)."""
    change = {}
    for event in plan["events"]:
        if event["kind"] != "speech" or event.get("gain_db") or event["text"] in change:
            continue
        clip = tmp_path / f"clip{len(change)}.wav"
        gt("say", event["text"], "-o", clip, check=True)
        with wave.open(str(clip)) as file:
            samples = np.frombuffer(file.readframes(file.getnframes()), "<i2").astype(np.float64)
        inside = audio[int(event["start"] * RATE): int((event["start"] + event["duration"]) * RATE)]
        change[event["text"]] = crest_db(inside) - crest_db(samples)
    return change


def test_the_voice_keeps_its_crest_factor(gt, tmp_path):
    """At the podcast target the limiter touches only the peaks above -1 dBTP: the short cues
    and most sentences keep their crest factor. At -23 LUFS nothing is limited at all."""
    report, plan, audio = rendered(gt, script(tmp_path, "crest", "background: {sound: pink-noise, level: -20}\n"))
    change = utterance_crests(plan, audio, gt, tmp_path)
    assert abs(change["Breathe in"]) <= 1.0, change
    assert abs(float(np.median(list(change.values())))) <= 1.0, change
    report, plan, audio = rendered(gt, script(tmp_path, "quiet", "loudness: broadcast\n"))
    check_promise(report, plan, audio, -23.0)
    assert all(abs(c) <= 1.0 for c in utterance_crests(plan, audio, gt, tmp_path).values())


@pytest.mark.parametrize("args, target, rate", [
    (["--format", "opus"], -16.0, 48_000),
    (["--format", "m4a"], -16.0, 44_100),
    (["--vbr", "2"], -16.0, 44_100),
    (["--loudness", "insight-timer"], -16.0, 48_000),
    (["--loudness", "-20"], -20.0, 44_100),
])
def test_every_format_and_target(gt, tmp_path, args, target, rate):
    """The codec correction is right for each format: the voice on target, the peak under -1."""
    path = script(tmp_path, "formats", "background: {sound: brown-noise, level: -18}\nloudness: broadcast\n")
    suffix = {"opus": ".opus", "m4a": ".m4a"}.get(args[1], ".mp3")
    out = tmp_path / f"out{suffix}"
    report = json.loads(gt("render", path, "-o", out, "--json", *args, check=True).stdout)[0]
    plan = json.loads(gt("plan", path, "--json", check=True).stdout)
    probed = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=sample_rate", "-of", "csv=p=0",
                             str(out)], capture_output=True, text=True, check=True).stdout.split()
    assert int(probed[0]) == rate
    check_promise(report, plan, decode(out), target)  # --loudness wins over the script's broadcast


def test_a_damaged_or_forged_remembered_gain_is_not_trusted(gt, tmp_path):
    path = script(tmp_path, "forged", "background: {sound: white-noise, level: -20}\n")
    cache = tmp_path / "cache"
    gt("render", path, "-o", tmp_path / "a.mp3", cache=cache, check=True)
    (state,) = (cache / "gains").iterdir()
    saved = json.loads(state.read_text())
    for forged in ('{"gain_db": Infinity}', json.dumps({**saved, "gain_db": 1e308}),
                   json.dumps({**saved, "gain_db": float("nan")}), "not json"):
        state.write_text(forged)
        out = tmp_path / "b.mp3"
        report = json.loads(gt("render", path, "-o", out, "--json", cache=cache, check=True).stdout)[0]
        plan = json.loads(gt("plan", path, "--json", cache=cache, check=True).stdout)
        check_promise(report, plan, decode(out), -16.0)


def test_loudness_in_a_script_and_its_mistakes(gt, tmp_path):
    path = script(tmp_path, "typo", "loudness: sleepy\n")
    result = gt("validate", path)
    assert result.returncode == 2
    assert "typo.yaml:3:" in result.stderr and "did you mean 'sleep'" in result.stderr
    path = script(tmp_path, "loud", "loudness: -2\n")
    assert "between -70 and -5 LUFS" in gt("validate", path).stderr
    result = gt("render", script(tmp_path, "ok", ""), "--loudness", "podcats")
    assert result.returncode == 2 and "did you mean 'podcast'" in result.stderr and "Traceback" not in result.stderr
