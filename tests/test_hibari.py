"""hibari, the default English voice: real synthesis through its worker, measured."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from guidetrack.engines.hibari_engine import HibariEngine, bundled_voices
from guidetrack.errors import InvalidInput
from guidetrack.script import VoiceSpec, load, load_profile
from guidetrack.speech import ClipCache, Speaker, pronounce
from helpers import ROOT, decode, ffprobe_duration, plan_json, window_db

pytestmark = pytest.mark.integration

LINES = ["Let the legs rest against the wall.", "Soften the jaw, and let the shoulders melt toward the floor."]


def speaker(folder: Path, voice: VoiceSpec) -> Speaker:
    return Speaker(voice, ClipCache(folder))


def test_english_scripts_that_name_no_voice_are_spoken_by_hibari(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("guidetrack: 1\ntitle: X\nsteps:\n  - say: Rest.\n")
    voice = load(path).voice
    assert (voice.engine, voice.voice, voice.profile) == ("hibari", "heart", "gentle") and voice.lexicon
    path.write_text("guidetrack: 1\ntitle: X\nvoice: {voice: en-gb, pitch: 40}\nsteps:\n  - say: Rest.\n")
    assert load(path).voice.engine == "pyttsx3"  # espeak-ng's settings start from espeak-ng's profile
    path.write_text("guidetrack: 1\ntitle: X\nlanguage: es\nsteps:\n  - say: Descansa.\n")
    assert (load(path).voice.engine, load(path).voice.voice) == ("pyttsx3", "es")  # hibari speaks English only


def test_a_short_script_renders_to_its_planned_length_with_speech_where_planned(gt, tmp_path):
    script = tmp_path / "hibari.yaml"
    script.write_text("guidetrack: 1\ntitle: Hibari\nduration: 40s\nsteps:\n"
                      f"  - say: {LINES[0]}\n  - breathe: {{pattern: relax, cycles: 2}}\n"
                      f"  - hold: {{for: 10s, min: 2s, max: 30s}}\n  - say: {LINES[1]}\n")
    out = tmp_path / "hibari.mp3"
    gt("render", script, "-o", out, check=True)
    plan = plan_json(gt, script)
    assert plan["voice"] == {"engine": "hibari", "voice": "heart"} and plan["duration"] == 40.0
    assert abs(ffprobe_duration(out) - 40.0) < 0.1
    audio = decode(out)
    for event in (e for e in plan["events"] if e["kind"] == "speech"):
        assert window_db(audio, event["start"], event["start"] + min(0.4, event["duration"])) > -45, event
        before = window_db(audio, event["start"] - 0.3, event["start"] - 0.02)
        assert before < -50, (event, before)  # nothing sounds before it starts: the cue is on its mark


def test_rate_scales_the_length_as_for_the_other_engines(tmp_path):
    slow = speaker(tmp_path, VoiceSpec(engine="hibari", voice="heart", rate=120)).lengths(LINES)
    fast = speaker(tmp_path, VoiceSpec(engine="hibari", voice="heart", rate=180)).lengths(LINES)
    ratio = sum(slow.values()) / sum(fast.values())
    assert 1.4 < ratio < 1.6, ratio


def test_lexicon_entries_change_what_is_said(tmp_path):
    plain = VoiceSpec(engine="hibari", voice="heart")
    respelled = VoiceSpec(engine="hibari", voice="heart", lexicon=(("Supta", "soopta"),))
    phonemes = VoiceSpec(engine="hibari", voice="heart", lexicon=(("Supta", {"hibari": "[[sˈuptə]]"}),))
    clips = [speaker(tmp_path, v).clip("Supta Baddha Konasana.") for v in (plain, respelled, phonemes)]
    assert clips[0].tobytes() != clips[1].tobytes()  # "soopta", not hibari's own "suhpta"
    assert clips[1].tobytes() == clips[2].tobytes()  # the respelling and the phonemes say it alike: sˈuptə


def test_the_librarys_sanskrit_names_come_out_right(tmp_path):
    """By the engine's own phonemes: what the shipped lexicon's respellings make hibari say."""
    from hibari import Hibari

    lexicon = load_profile("gentle").lexicon
    g2p = Hibari()
    said = {word: g2p.phonemize(pronounce(word, lexicon, "hibari"))[0] for word in
            ("Supta Padangusthasana", "Savasana", "Balasana", "chakra")}
    assert said["Supta Padangusthasana"].startswith("sˈupt") and "ʃt" in said["Supta Padangusthasana"]  # soo-pta, -ushta-
    assert said["Savasana"].startswith("ʃ")  # sha-vaa-sana, as teachers say it
    assert said["Balasana"].startswith("bˈɑ") and said["chakra"].startswith("ʧˈʌ")


def test_two_fresh_caches_give_identical_clips(tmp_path):
    voice = VoiceSpec(engine="hibari", voice="heart", rate=130)
    first = speaker(tmp_path / "a", voice).clip(LINES[1])
    second = Speaker(voice, ClipCache(tmp_path / "b"), engine_for=lambda name: HibariEngine()).clip(LINES[1])
    assert first.tobytes() == second.tobytes()


def test_utterances_spoken_at_once_are_each_as_spoken_alone(tmp_path):
    """The worker speaks a batch one utterance a core at once: each comes out the very samples
    it has when it is the only one asked for."""
    voice = VoiceSpec(engine="hibari", voice="heart", rate=130)
    lines = [*LINES, "Breathe in slowly.", "And out, a little longer.", "Rest here.", "Let the arms be heavy."]
    engine = HibariEngine()
    engine.synthesize_many([(line, tmp_path / f"batch{i}.wav") for i, line in enumerate(lines)], voice)
    for i, line in enumerate(lines):
        engine.synthesize(line, voice, tmp_path / f"alone{i}.wav")
    engine.close()
    for i in range(len(lines)):
        assert (tmp_path / f"batch{i}.wav").read_bytes() == (tmp_path / f"alone{i}.wav").read_bytes(), lines[i]


def test_the_spelling_rules_kept_beside_the_clips_give_the_same_speech(tmp_path):
    """The worker keeps hibari's spelling rules in the cache's engines/ folder and reads them back
    from there; a damaged kept file is read from hibari's asset again and replaced, and one kept
    for another hibari or Python is removed."""
    voice = VoiceSpec(engine="hibari", voice="heart", rate=130)
    older = tmp_path / "engines" / "hibari-0.1.0-py310-tagger.json.gz-1000-1.marshal"
    older.parent.mkdir()
    older.write_bytes(b"kept by an earlier install")
    said = []
    for attempt in range(3):
        engine = HibariEngine()
        engine.keep_in = tmp_path / "engines"
        engine.synthesize(LINES[1], voice, tmp_path / f"{attempt}.wav")
        engine.close()
        said.append((tmp_path / f"{attempt}.wav").read_bytes())
        kept = sorted((tmp_path / "engines").glob("hibari-*.marshal"))
        assert len(kept) == 4  # both lexicons, the tagger and the tokenizer's exceptions
        if attempt == 0:
            written = {path: path.stat().st_mtime_ns for path in kept}
            tagger = next(path for path in kept if "tagger" in path.name)
            whole = tagger.read_bytes()
            tagger.write_bytes(whole[:1000] + bytes(b ^ 0xFF for b in whole[1000:1010]) + whole[1010:])  # damaged: read from the asset again
    assert said[0] == said[1] == said[2]
    assert not older.exists()
    assert tagger.read_bytes() == whole
    # the others were read back, never written again
    assert all(path.stat().st_mtime_ns == when for path, when in written.items() if path != tagger)


def test_a_killed_or_hung_worker_is_recovered(tmp_path):
    engine = HibariEngine()
    voice = VoiceSpec(engine="hibari", voice="heart")
    engine.synthesize(LINES[0], voice, tmp_path / "a.wav")
    engine._worker.send_signal(signal.SIGKILL)  # killed between two utterances
    engine._worker.wait()
    engine.synthesize(LINES[1], voice, tmp_path / "b.wav")  # a new worker, at once
    assert (tmp_path / "b.wav").stat().st_size > 10_000
    engine._worker.send_signal(signal.SIGSTOP)  # hung: no answer within its time
    engine.timeout = lambda text: 1.0
    engine.synthesize("Rest here.", voice, tmp_path / "c.wav")  # times out, then is spoken by a fresh worker
    assert (tmp_path / "c.wav").stat().st_size > 5_000 and engine.restarts == 1
    engine.close()


def test_a_voice_not_inside_the_package_is_an_error_at_its_line(tmp_path):
    assert bundled_voices() == ("heart",)
    path = tmp_path / "x.yaml"
    path.write_text("guidetrack: 1\ntitle: X\nvoice:\n  engine: hibari\n  voice: emma\nsteps:\n  - say: Rest.\n")
    with pytest.raises(InvalidInput) as err:
        load(path)
    problem = err.value.problems[0]
    assert problem.where.line == 5 and "never downloads" in problem.message


@pytest.mark.skipif(not shutil.which("unshare"), reason="unshare (util-linux) is not installed")
def test_rendering_with_hibari_fetches_nothing(tmp_path):
    """With no network at all (a new network namespace), a cold render with hibari works."""
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"this machine does not allow a network namespace: {probe.stderr.decode().strip()}")
    script = tmp_path / "x.yaml"
    script.write_text(f"guidetrack: 1\ntitle: X\nsteps:\n  - say: {LINES[0]}\n")
    env = {**os.environ, "GUIDETRACK_CACHE_DIR": str(tmp_path / "cold"), "HOME": str(tmp_path / "home")}
    done = subprocess.run(["unshare", "-rn", sys.executable, "-m", "guidetrack", "render", str(script), "-o",
                           str(tmp_path / "x.mp3")], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "1 new" in done.stderr and np.any(decode(tmp_path / "x.mp3"))
    assert not (tmp_path / "home" / ".cache" / "hibari").exists()
