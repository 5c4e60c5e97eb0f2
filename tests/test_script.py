"""Loading scripts: every key of the contract, and clear errors with file, line and column."""

from pathlib import Path

import pytest

from guidetrack.errors import InvalidInput
from guidetrack.script import Breathe, Chime, Hold, Pause, Say, Section, Sides, load
from guidetrack.units import to_samples

CONTRACT_EXAMPLE = """\
guidetrack: 1
title: Legs Up the Wall
author: A. Teacher
description: A gentle practice.
duration: 10m
voice: {engine: pyttsx3, voice: en-us, rate: 140, volume: 0.9}
background:
  sound: brown-noise
  level: -18 dB
  fade_in: 5s
  fade_out: 10s
steps:
  - say: Find a wall with room to lie down. [2s] Bring a folded blanket.
  - pause: 3s
  - chime
  - chime: {}
  - breathe:
      pattern: {in: 4s, hold: 0s, out: 6s, rest: 0s}
      cycles: 6
      cue: words
  - breathe: {pattern: coherent, for: 2m, cue: tone}
  - breathe: {pattern: 4-7-8, cycles: 2, cue: count}
  - breathe: {pattern: box, cycles: 1, cue: none}
  - hold:
      for: 5m
      min: 3m
      max: 8m
      reminders:
        - Let the legs grow heavy.
        - Soften the jaw.
  - sides: [right, left]
    steps:
      - say: Cross the {side} ankle over the other knee.
      - hold: 1m
  - section: Settling in
    steps:
      - say: Rest.
"""


def write(tmp_path: Path, text: str | bytes, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def problems(tmp_path: Path, text: str | bytes) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        load(write(tmp_path, text))
    return [str(p) for p in caught.value.problems]


def test_every_contract_key_loads(tmp_path):
    script = load(write(tmp_path, CONTRACT_EXAMPLE))
    assert script.title == "Legs Up the Wall" and script.author == "A. Teacher"
    assert script.duration == to_samples(600)
    assert script.voice.rate == 140 and script.voice.volume == 0.9
    assert script.background.sound == "brown-noise" and script.background.level_db == -18
    assert script.background.fade_out == to_samples(10)
    kinds = [type(s) for s in script.steps]
    assert kinds == [Say, Pause, Chime, Chime, Breathe, Breathe, Breathe, Breathe, Hold, Sides, Section]
    breathe = script.steps[5]
    assert breathe.cycles == to_samples(120) // breathe.pattern.cycle == 11
    hold = script.steps[8]
    assert (hold.length, hold.min, hold.max) == (to_samples(300), to_samples(180), to_samples(480))
    assert script.steps[9].sides == ("right", "left")


def test_unknown_key_names_line_column_and_suggests(tmp_path):
    found = problems(tmp_path, "guidetrack: 1\ntitle: T\nsteps:\n  - breathe:\n      patern: box\n      cycles: 2\n")
    assert any(p.startswith(f"{tmp_path}/s.yaml:5:7: steps[0].breathe.patern: unknown key (did you mean 'pattern'?)")
               for p in found), found


def test_unknown_preset_suggests(tmp_path):
    found = problems(tmp_path, "guidetrack: 1\ntitle: T\nsteps:\n  - breathe: {pattern: boxx, cycles: 2}\n")
    assert any(":4:" in p and "did you mean 'box'" in p for p in found), found


def test_unknown_step_suggests(tmp_path):
    found = problems(tmp_path, "guidetrack: 1\ntitle: T\nsteps:\n  - sya: hello\n")
    assert any("s.yaml:4:5" in p and "unknown step 'sya' (did you mean 'say'?)" in p for p in found), found


def test_every_problem_in_one_pass(tmp_path):
    found = problems(tmp_path, "guidetrack: 1\ntitle: T\nduration: soon\nsteps:\n  - pause: 3x\n"
                               "  - hold: {for: 1m, min: 2m}\n  - breathe: {pattern: box}\n")
    assert len(found) == 4, found
    assert any(":3:" in p and "'soon' is not a duration" in p for p in found)
    assert any(":5:" in p and "'3x' is not a duration" in p for p in found)
    assert any(":6:" in p and "min <= for <= max" in p for p in found)
    assert any(":7:" in p and "either `cycles: N` or `for: 2m`" in p for p in found)


@pytest.mark.parametrize("text, expected", [
    (b"", "the file is empty"),
    (b"\xff\xfe\x00binary", "not UTF-8"),
    (b"just words", "a script is a mapping"),
    ("guidetrack: 1\ntitle: T\nsteps: [\n", "not valid YAML"),
    ("guidetrack: 2\ntitle: T\nsteps: [chime]\n", "must be 1"),
    ("title: T\nsteps: [chime]\n", "missing the key 'guidetrack'"),
    ("guidetrack: 1\ntitle: T\nsteps: []\n", "must not be empty"),
    ("guidetrack: 1\ntitle: T\nsteps:\n  - !!python/object:os.system {}\n", "tag"),
    ("guidetrack: 1\ntitle: T\nsteps:\n  - say: Lift the {side} leg.\n", "{side} only works inside"),
    ("guidetrack: 1\ntitle: T\nsteps:\n  - say: Rest [soon] now.\n", "inline pause [soon]"),
    ("guidetrack: 1\ntitle: T\nsteps:\n  - breathe: {pattern: box, cycles: 99999999}\n", "maximum"),
    ("guidetrack: 1\ntitle: T\nsteps:\n  - pause: 1e999\n", "not a usable duration"),
    ("guidetrack: 1\ntitle: T\nvoice: whisper\nsteps: [chime]\n", "unknown voice profile"),
    ("guidetrack: 1\ntitle: T\nbackground: {sound: rain.mp3}\nsteps: [chime]\n", "does not exist"),
    ("guidetrack: 1\ntitle: T\nbackground: {sound: brwn-noise}\nsteps: [chime]\n", "did you mean 'brown-noise'"),
    ("guidetrack: 1\ntitle: T\nsteps:\n  - say: a\n    pause: 2s\n", "one step has one kind"),
    ("guidetrack: 1\ntitle: T\ntitle: U\nsteps: [chime]\n", "appears twice"),
])
def test_bad_input_is_reported_not_raised(tmp_path, text, expected):
    found = problems(tmp_path, text)
    assert any(expected in p for p in found), found
    assert all(p.startswith(str(tmp_path)) or "no such file" in p for p in found), found


def test_alias_bomb_stops_quickly(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    found = problems(tmp_path, "\n".join(lines) + "\nguidetrack: 1\n")
    assert any("alias bomb" in p for p in found)


def test_missing_file(tmp_path):
    with pytest.raises(InvalidInput, match="no such file"):
        load(tmp_path / "nope.yaml")
