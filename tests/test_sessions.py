"""The class library in sessions/: every script validates in strict mode and renders.

Each script's `short` variant is rendered with the real engine and encoder, then measured.
"""

from __future__ import annotations

import pytest
from mutagen.id3 import ID3

from guidetrack.script import load_all
from helpers import SESSIONS, decode, ffprobe_duration, plan_json, window_db

pytestmark = pytest.mark.integration

SCRIPTS = sorted(p for p in SESSIONS.glob("*.yaml"))


def test_the_library_has_its_sessions_and_shared_poses():
    names = {p.stem for p in SCRIPTS}
    assert {"legs-up-the-wall", "wall-inversions-for-runners", "gentle-yoga-for-back-pain",
            "reclined-leg-stretch", "coherent-breathing"} <= names
    assert len(list((SESSIONS / "poses").glob("*.yaml"))) >= 8


def test_the_library_speaks_sanskrit_names_through_the_lexicon():
    """The shipped lexicon covers the pose names the library's narration says."""
    import re

    from guidetrack.script import load_profile
    from guidetrack.speech import pronounce

    lexicon = load_profile("calm").lexicon
    narration = " ".join(p.read_text() for p in [*SCRIPTS, *(SESSIONS / "poses").glob("*.yaml")])
    spoken = [word for word, _ in lexicon if re.search(rf"\b{re.escape(word)}\b", narration, re.IGNORECASE)]
    assert {"Supta Padangusthasana", "Balasana", "Baddha Konasana"} <= set(spoken), spoken
    assert all(pronounce(word, lexicon) != word for word in spoken)


@pytest.mark.slow(16)
def test_every_script_and_block_validates_in_strict_mode(gt):
    result = gt("validate", "--strict", SESSIONS)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    for script in SCRIPTS:
        assert f"ok  {script} [short]" in result.stdout, result.stdout


@pytest.mark.slow(20)
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_short_variant_renders_and_speech_falls_where_planned(gt, tmp_path, script):
    out = tmp_path / "short.mp3"
    result = gt("render", script, "--variant", "short", "-o", out, check=True)
    assert "Traceback" not in result.stderr
    main = load_all(script)[0]  # the first variant: the main track
    plan = plan_json(gt, script, "short")
    assert abs(ffprobe_duration(out) - plan["duration"]) < 0.1
    audio = decode(out)
    assert abs(len(audio) / 44100 - plan["duration"]) < 0.01
    assert str(ID3(out)["TIT2"]) == plan["title"] != main.title

    # The bed alone, in the quiet stretches; every utterance clearly above it where the plan puts it.
    events = sorted((e["start"], e["start"] + e["duration"]) for e in plan["events"])
    quiet, end_of_last = [], 0.0
    for start, end in events:
        if start - end_of_last > 3:
            quiet.append(window_db(audio, end_of_last + 1, start - 1))
        end_of_last = max(end_of_last, end)
    assert quiet, "no quiet stretch to measure the bed in"
    bed = max(quiet)
    speech = [e for e in plan["events"] if e["kind"] == "speech"]
    assert speech
    for event in speech:
        level = window_db(audio, event["start"], event["start"] + min(0.5, event["duration"]))
        assert level > bed + 10, (event, level, bed)
