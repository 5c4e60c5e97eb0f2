"""Cache keys name what changes the sound, never where a library lies or how its file is laid out."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from guidetrack.encode import Output
from guidetrack.render import _gain_file, plan_script
from guidetrack.script import load

SCRIPT = """guidetrack: 1
title: Keys
voice: calm
background: {{sound: bed.wav, level: {level}}}
intro: intro.wav
steps:
  - section: Rest
    steps:
      - say: Rest here.
      - hold: 3s
"""


def _library(folder: Path, level: int = -20, padding: str = "", swapped: bool = False) -> Path:
    folder.mkdir(parents=True)
    names = ("intro.wav", "bed.wav") if swapped else ("bed.wav", "intro.wav")
    for name, colour in zip(names, ("pink", "brown"), strict=True):  # the same length: only their roles differ
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"anoisesrc=d=2:c={colour}:r=44100:s=3",
                        "-ac", "2", str(folder / name)], check=True)
    script = folder / "keys.yaml"
    script.write_text(padding + SCRIPT.format(level=level))
    return script


def _key(script: Path, cache: Path) -> str:
    plan, speaker = plan_script(load(script), cache)
    return _gain_file(plan, speaker, Output()).name


@pytest.mark.integration
def test_a_moved_and_reformatted_library_keeps_its_gain_key_and_a_changed_sound_does_not(tmp_path):
    cache = tmp_path / "cache"
    here = _key(_library(tmp_path / "a"), cache)
    moved = _key(_library(tmp_path / "elsewhere" / "b", padding="# moved, and two lines lower\n\n"), cache)
    assert moved == here
    assert _key(_library(tmp_path / "c", level=-24), cache) != here
    assert _key(_library(tmp_path / "d", swapped=True), cache) != here  # the bed's sound is now the intro's
    shutil.rmtree(tmp_path / "a")
