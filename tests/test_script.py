"""Loading scripts: every key of the contract, and clear errors with file, line and column."""

from pathlib import Path

import pytest

from guidetrack.errors import InvalidInput
from guidetrack.script import Breathe, Chime, Duck, Hold, Pause, Say, Section, Sides, load
from guidetrack.units import to_samples
from helpers import SESSIONS

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


# ---------------------------------------------------------------- includes, parameters, variants

from guidetrack.script import json_schema, load_all  # noqa: E402

BLOCK = """\
guidetrack: 1
block: Figure four
params: {hold: 1m, side: null}
steps:
  - say: Cross the {side} ankle over the other thigh.
  - hold: {hold}
"""


def library(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_include_inserts_a_block_with_parameters(tmp_path):
    library(tmp_path, {"poses/four.yaml": BLOCK, "s.yaml": (
        "guidetrack: 1\ntitle: T\nsteps:\n  - say: Begin.\n"
        "  - include: poses/four.yaml\n    with: {side: left, hold: 90}\n"
        "  - include: poses/four.yaml\n    with: {side: right}\n")})
    script = load(tmp_path / "s.yaml")
    # each include is a pose: a group named after the block, which becomes a chapter
    assert [type(s) for s in script.steps] == [Say, Section, Section]
    left, right = script.steps[1], script.steps[2]
    assert (left.title, left.pose, left.where.line) == ("Figure four", True, 5)
    assert [type(s) for s in left.steps + right.steps] == [Say, Hold, Say, Hold]
    assert left.steps[0].text == "Cross the left ankle over the other thigh."
    assert left.steps[1].length == to_samples(90)  # "{hold}" alone keeps the number's type
    assert right.steps[1].length == to_samples(60)  # the default
    assert (tmp_path / "poses/four.yaml").resolve() in script.sources


def test_a_block_can_say_it_is_not_a_chapter(tmp_path):
    library(tmp_path, {"b.yaml": "guidetrack: 1\nblock: Turn\nchapter: false\nsteps:\n  - say: Turn over.\n",
                       "s.yaml": "guidetrack: 1\ntitle: T\nsteps:\n  - include: b.yaml\n"})
    assert [type(s) for s in load(tmp_path / "s.yaml").steps] == [Say]


def test_blocks_include_blocks_and_keep_side_for_sides(tmp_path):
    library(tmp_path, {
        "poses/inner.yaml": "guidetrack: 1\nblock: Inner\nsteps:\n  - say: Lift the {side} leg.\n",
        "poses/outer.yaml": "guidetrack: 1\nblock: Outer\nsteps:\n  - include: inner.yaml\n  - pause: 2s\n",
        "s.yaml": "guidetrack: 1\ntitle: T\nsteps:\n  - sides: [right, left]\n    steps:\n"
                  "      - include: poses/outer.yaml\n"})
    sides = load(tmp_path / "s.yaml").steps[0]
    assert isinstance(sides, Sides) and [s.title for s in sides.steps] == ["Outer"]
    outer = sides.steps[0].steps
    assert [type(s) for s in outer] == [Section, Pause] and outer[0].title == "Inner"
    assert [type(s) for s in outer[0].steps] == [Say]


def test_problem_inside_a_block_names_the_block_line_and_the_include(tmp_path):
    library(tmp_path, {
        "poses/bad.yaml": "guidetrack: 1\nblock: Bad\nparams: {hold: 1m}\nsteps:\n  - hold: {hold}\n  - sya: hi\n",
        "s.yaml": "guidetrack: 1\ntitle: T\nsteps:\n  - chime\n  - include: poses/bad.yaml\n    with: {hold: soon}\n"})
    with pytest.raises(InvalidInput) as caught:
        load(tmp_path / "s.yaml")
    found = [str(p) for p in caught.value.problems]
    assert any(p.startswith(f"{tmp_path}/poses/bad.yaml:5:") and "'soon' is not a duration" in p
               and "included from" in p and "s.yaml:5:" in p for p in found), found
    assert any("poses/bad.yaml:6:5" in p and "did you mean 'say'" in p for p in found), found


@pytest.mark.parametrize("files, expected", [
    ({"a.yaml": "guidetrack: 1\nblock: A\nsteps:\n  - include: b.yaml\n",
      "b.yaml": "guidetrack: 1\nblock: B\nsteps:\n  - include: a.yaml\n",
      "s.yaml": "guidetrack: 1\ntitle: T\nsteps:\n  - include: a.yaml\n"}, "include cycle: a.yaml -> b.yaml -> a.yaml"),
    ({"s.yaml": "guidetrack: 1\ntitle: T\nsteps:\n  - include: ../outside.yaml\n"}, "outside the library folder"),
    ({"s.yaml": "guidetrack: 1\ntitle: T\nsteps:\n  - include: nope.yaml\n"}, "no block file 'nope.yaml'"),
    ({"b.yaml": BLOCK, "s.yaml": "guidetrack: 1\ntitle: T\nsteps:\n  - include: b.yaml\n"},
     "needs the parameter 'side'"),
    ({"b.yaml": BLOCK, "s.yaml": "guidetrack: 1\ntitle: T\nsteps:\n  - include: b.yaml\n    with: {side: l, hodl: 2}\n"},
     "has no parameter 'hodl' (did you mean 'hold'?)"),
    ({"b.yaml": "guidetrack: 1\ntitle: B\nsteps: [chime]\n",
      "s.yaml": "guidetrack: 1\ntitle: T\nsteps:\n  - include: b.yaml\n"}, "is not a block"),
    ({"s.yaml": "guidetrack: 1\ntitle: T\nsteps:\n  - say: Hold for {breaths} breaths.\n"},
     "{breaths} is not a parameter here"),
])
def test_include_problems(tmp_path, files, expected):
    (tmp_path / "lib").mkdir()
    library(tmp_path / "lib", files)
    (tmp_path / "outside.yaml").write_text("guidetrack: 1\nblock: X\nsteps: [chime]\n")
    with pytest.raises(InvalidInput) as caught:
        load(tmp_path / "lib/s.yaml")
    assert any(expected in str(p) for p in caught.value.problems), caught.value.problems


def test_include_bomb_stops(tmp_path):
    files = {"s.yaml": "guidetrack: 1\ntitle: T\nsteps:\n" + "  - include: b0.yaml\n" * 10}
    for level in range(6):
        inner = f"  - include: b{level + 1}.yaml\n" * 10 if level < 5 else "  - pause: 1\n" * 10
        files[f"b{level}.yaml"] = f"guidetrack: 1\nblock: B{level}\nsteps:\n" + inner
    library(tmp_path, files)
    with pytest.raises(InvalidInput, match="more than 20000 steps"):
        load(tmp_path / "s.yaml")


def test_variants_render_separately_with_their_own_settings(tmp_path):
    library(tmp_path, {"s.yaml": (
        "guidetrack: 1\ntitle: Rest\nduration: 10m\nparams: {cycles: 4}\n"
        "variants:\n  standard: {}\n  short: 5m\n  long:\n    duration: 20m\n    title: Long rest\n"
        "    with: {cycles: 8}\n"
        "steps:\n  - breathe: {pattern: relax, cycles: '{cycles}'}\n  - hold: {for: 5m, min: 1m, max: 20m}\n")})
    scripts = load_all(tmp_path / "s.yaml")
    assert [s.variant for s in scripts] == ["standard", "short", "long"]
    assert [s.duration for s in scripts] == [to_samples(600), to_samples(300), to_samples(1200)]
    assert [s.title for s in scripts] == ["Rest (standard)", "Rest (short)", "Long rest"]
    assert [s.steps[0].cycles for s in scripts] == [4, 4, 8]
    assert [s.slug for s in scripts] == ["s-standard", "s-short", "s-long"]
    assert load(tmp_path / "s.yaml", "short").duration == to_samples(300)
    with pytest.raises(InvalidInput, match="did you mean 'short'"):
        load(tmp_path / "s.yaml", "shrt")


def test_a_problem_in_a_variant_points_at_the_variant(tmp_path):
    found = problems(tmp_path, "guidetrack: 1\ntitle: T\nduration: 1m\nvariants:\n  short: {duration: 0}\n"
                               "  Bad: 2m\n  long: {durration: 3m}\nsteps: [chime]\n")
    assert any(":5:" in p and "variants.short.duration: must be longer than 0" in p for p in found), found
    assert any("durration" in p and "did you mean 'duration'" in p and ":7:" in p for p in found), found
    assert any("Bad" in p for p in found), found


def test_a_value_every_variant_overrides_is_still_checked(tmp_path):
    """Found by `serve`'s test: a top-level `duration: twenty` was never read, as both variants set
    their own, and the script passed."""
    found = problems(tmp_path, "guidetrack: 1\ntitle: T\nduration: twenty\nvoice: clam\n"
                               "variants:\n  short: 1m\n  long: {duration: 2m, voice: calm}\nsteps: [chime]\n")
    assert any(":3:11:" in p and "'twenty' is not a duration" in p for p in found), found
    assert any(":4:" in p and "clam" in p for p in found), found  # `long` sets its own voice; `short` takes this one
    assert len(found) == len(set(found)), found  # each once


def test_a_library_the_script_is_not_in_says_so(tmp_path):
    """`--library` naming another folder: not mistaken for a symbolic link."""
    script = write(tmp_path, "guidetrack: 1\ntitle: T\nsteps: [chime]\n")
    (tmp_path / "other").mkdir()
    with pytest.raises(InvalidInput, match="not in the library folder .*other: name the folder it belongs to"):
        load(script, None, tmp_path / "other")
    assert load(script, None, tmp_path).title == "T"
    library = tmp_path / "library"
    library.mkdir()
    (library / "link.yaml").symlink_to(script)  # in the library by its name, a file outside it in fact
    with pytest.raises(InvalidInput, match="symbolic link to .*copy it into the library"):
        load(library / "link.yaml", None, library)


def test_fast_voice_is_a_warning(tmp_path):
    script = load(write(tmp_path, "guidetrack: 1\ntitle: T\nvoice: {rate: 220}\nsteps: [chime]\n"))
    assert [w.severity for w in script.warnings] == ["warning"]
    assert "fast for relaxation" in script.warnings[0].message and script.warnings[0].where.line == 3


def test_fade_needs_spoken_cues(tmp_path):
    found = problems(tmp_path, "guidetrack: 1\ntitle: T\nsteps:\n  - breathe: {pattern: box, cycles: 5, cue: tone, fade: 2}\n")
    assert any("needs cue: words or count" in p for p in found), found


def test_a_block_is_not_rendered_as_a_script(tmp_path):
    found = problems(tmp_path, BLOCK)
    assert any("this file is a block" in p for p in found), found


def test_json_schema_agrees_with_the_loader(tmp_path):
    from jsonschema import Draft7Validator

    schema = json_schema()
    Draft7Validator.check_schema(schema)
    validator = Draft7Validator(schema)
    import yaml

    good = [yaml.safe_load(CONTRACT_EXAMPLE), yaml.safe_load(BLOCK)]
    for path in sorted(SESSIONS.rglob("*.yaml")):
        good.append(yaml.safe_load(path.read_text()))
    for data in good:
        assert not list(validator.iter_errors(data)), data.get("title") or data.get("block")
    bad = ["guidetrack: 1\ntitle: T\nsteps:\n  - sya: hi\n", "guidetrack: 1\ntitle: T\nsteps:\n  - breathe: {cue: loud}\n",
           "guidetrack: 1\nblock: B\nsteps:\n  - section: S\n    steps:\n      - hold: {for: 1m, mx: 2m}\n",
           "guidetrack: 1\nblock: B\nsteps:\n  - breathe: {cycles: many}\n"]
    for text in bad:
        assert list(validator.iter_errors(yaml.safe_load(text))), text


def test_committed_schema_file_is_current():
    import json

    committed = json.loads((SESSIONS / "guidetrack.schema.json").read_text())
    assert committed == json_schema(), "run: scripts/guidetrack schema > sessions/guidetrack.schema.json"


def test_a_missing_cover_is_an_error_at_its_line(tmp_path):
    found = problems(tmp_path, "guidetrack: 1\ntitle: T\ncover: art.png\nsteps: [chime]\n")
    assert any(":3:" in p and "art.png does not exist" in p for p in found), found
    found = problems(tmp_path, "guidetrack: 1\ntitle: T\ncover: art.gif\nsteps: [chime]\n")
    assert any(":3:" in p and "cover" in p for p in found), found


# ---------------------------------------------------------------- voice profiles and lexicons

def test_voice_profiles_come_from_voices_folders(tmp_path):
    from guidetrack.script import load_profile

    calm = load_profile("calm")  # comes with guidetrack
    assert (calm.engine, calm.voice, calm.rate, calm.pitch) == ("pyttsx3", "en-us", 135, 45)
    assert dict(calm.lexicon)["Savasana"] == "shavaasana"
    library(tmp_path, {
        "voices/gentle.yaml": "guidetrack-voice: 1\nengine: pyttsx3\nvoice: en-gb-x-rp\nrate: 120\n"
                              "lexicon: {Tadasana: tah dah sah nah}\n",
        "s.yaml": "guidetrack: 1\ntitle: T\nlexicon: {tadasana: mountain pose, Bolster: bol ster}\n"
                  "steps:\n  - say: Rest.\n",
        "t.yaml": "guidetrack: 1\ntitle: T\nvoice: {rate: 125, pitch: 30}\nsteps:\n  - say: Rest.\n"})
    voice = load(tmp_path / "s.yaml").voice  # voices/ beside the script wins over the built-in
    assert (voice.voice, voice.rate, voice.profile) == ("en-gb-x-rp", 120, "gentle")
    # the script's lexicon is laid over the profile's, matching words in any case
    assert dict(voice.lexicon) == {"tadasana": "mountain pose", "Bolster": "bol ster"}
    inline = load(tmp_path / "t.yaml").voice  # espeak-ng's fields (a pitch) over its profile, calm
    assert (inline.engine, inline.voice, inline.rate, inline.pitch) == ("pyttsx3", "en-us", 125, 30)


@pytest.mark.parametrize("files, expected", [
    ({"s.yaml": "guidetrack: 1\ntitle: T\nvoice: clam\nsteps: [chime]\n"},
     "s.yaml:3:8: voice: unknown voice profile 'clam' (did you mean 'calm'?)"),
    ({"voices/slow.yaml": "guidetrack-voice: 1\nengine: pyttsx3\nvoice: en-us\nrate: fast\n",
      "s.yaml": "guidetrack: 1\ntitle: T\nvoice: slow\nsteps: [chime]\n"},
     "voices/slow.yaml:4:7: rate: expected a whole number, got 'fast' (the voice profile named at"),
    ({"s.yaml": "guidetrack: 1\ntitle: T\nlexicon: words.yaml\nsteps: [chime]\n"},
     "s.yaml:3:10: lexicon: the lexicon"),
    ({"words.yaml": "Savasana: [not, text]\n",
      "s.yaml": "guidetrack: 1\ntitle: T\nlexicon: words.yaml\nsteps: [chime]\n"},
     "words.yaml:1:11: Savasana: expected a mapping or text, got a list"),
])
def test_bad_voices_and_lexicons_are_reported_where_they_are(tmp_path, files, expected):
    library(tmp_path, files)
    with pytest.raises(InvalidInput) as caught:
        load(tmp_path / "s.yaml")
    found = [str(p) for p in caught.value.problems]
    assert any(expected in p for p in found), found


@pytest.mark.parametrize("duck, expected", [
    (None, Duck()),  # the default dip
    ("true", Duck()),
    ("false", None),
    ("0", None),
    ("10", Duck(depth_db=10.0)),
    ("-10 dB", Duck(depth_db=10.0)),  # a dip either way
    ("{depth: 8, attack: 0.2s, release: 2s}", Duck(8.0, to_samples(0.2), to_samples(2))),
])
def test_background_duck_forms(tmp_path, duck, expected):
    path = tmp_path / "s.yaml"
    extra = f", duck: {duck}" if duck is not None else ""
    path.write_text(f"guidetrack: 1\ntitle: T\nbackground: {{sound: ocean{extra}}}\nsteps: [chime]\n")
    assert load(path).background.duck == expected


def test_piper_voices_are_found_or_reported_at_their_line(tmp_path):
    library(tmp_path, {
        "voices/mine.onnx": "model", "voices/mine.onnx.json": "{}",
        "voices/deep.yaml": "guidetrack-voice: 1\nengine: piper\nvoice: mine\nrate: 130\npitch: 40\n",
        "a.yaml": "guidetrack: 1\ntitle: T\nvoice: {engine: piper}\nsteps: [chime]\n",
        "b.yaml": "guidetrack: 1\ntitle: T\nvoice: deep\nsteps: [chime]\n",
        "c.yaml": "guidetrack: 1\ntitle: T\nvoice: {engine: piper, voice: nobody}\nsteps: [chime]\n",
        "d.yaml": "guidetrack: 1\ntitle: T\nvoice: {engine: piper, voice: models/gone.onnx}\nsteps: [chime]\n",
    })
    inline = load(tmp_path / "a.yaml").voice  # only the engine named: its own default voice, no pitch
    assert (inline.engine, inline.voice, inline.pitch) == ("piper", "joe", None)
    deep = load(tmp_path / "b.yaml")  # a model in voices/, by name
    assert deep.voice.voice == str((tmp_path / "voices/mine.onnx").resolve())
    assert (tmp_path / "voices/mine.onnx").resolve() in deep.sources
    assert [str(p) for p in deep.warnings] == [
        f"{tmp_path / 'voices/deep.yaml'}:5:8: warning: pitch: Piper voices have no pitch setting; it is ignored"
        f" (the voice profile named at {tmp_path / 'b.yaml'}:3:8)"]
    with pytest.raises(InvalidInput, match=r"c.yaml:3:31: voice.voice: no Piper voice 'nobody': use a packaged one"):
        load(tmp_path / "c.yaml")
    with pytest.raises(InvalidInput, match=r"d.yaml:3:31: voice.voice: the Piper model .*gone.onnx does not exist"):
        load(tmp_path / "d.yaml")


def test_a_lexicon_entry_can_differ_per_engine(tmp_path):
    from guidetrack.speech import pronounce

    library(tmp_path, {"s.yaml": "guidetrack: 1\ntitle: T\nlexicon:\n"
                                 "  Savasana: {pyttsx3: \"[[S'A:v@s@n@]]\", piper: \"[[ʃɑːvˈɑːsənə]]\"}\n"
                                 "  Bolster: {piper: bol ster}\nsteps: [chime]\n",
                       "t.yaml": "guidetrack: 1\ntitle: T\nlexicon: {Savasana: {espeak: x}}\nsteps: [chime]\n"})
    lexicon = load(tmp_path / "s.yaml").voice.lexicon
    text = "A bolster under you in Savasana."
    assert pronounce(text, lexicon, "pyttsx3") == "A bolster under you in [[S'A:v@s@n@]]."
    assert pronounce(text, lexicon, "piper") == "A bol ster under you in [[ʃɑːvˈɑːsənə]]."
    with pytest.raises(InvalidInput, match=r"t.yaml:3:21: lexicon.Savasana: unknown key .espeak.; known keys: hibari, piper, pyttsx3"):
        load(tmp_path / "t.yaml")


def test_folders_are_searched_for_scripts_but_not_voices_folders(tmp_path):
    """voices/ holds profiles and lexicons: `validate DIR` and `build DIR` must not read them as
    scripts (they did: 'guidetrack-voice: unknown key')."""
    from guidetrack.render import script_files

    library(tmp_path, {"a.yaml": "guidetrack: 1\ntitle: T\nsteps: [chime]\n",
                       "evening/b.yaml": "guidetrack: 1\ntitle: T\nsteps: [chime]\n",
                       "voices/mine.yaml": "guidetrack-voice: 1\nengine: pyttsx3\nvoice: en-us\n",
                       "evening/voices/words.lexicon.yaml": "Savasana: shavaasana\n"})
    assert [file.relative_to(tmp_path).as_posix() for file, _ in script_files([tmp_path])] == ["a.yaml", "evening/b.yaml"]


# ---------------------------------------------------------------- files a script names


def _png(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height, with next to nothing after it (a pixel bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def _load_error(tmp_path: Path, line: str) -> str:
    script = tmp_path / "lib" / "s.yaml"
    script.parent.mkdir(exist_ok=True)
    script.write_text(f"guidetrack: 1\ntitle: T\n{line}\nsteps:\n  - say: Rest.\n")
    with pytest.raises(InvalidInput) as caught:
        load(script)
    return str(caught.value)


def test_a_cover_must_be_a_real_bounded_image_inside_the_library(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "env.png").symlink_to("/proc/self/environ")
    message = _load_error(tmp_path, "cover: env.png")
    assert "s.yaml:3:8: cover: 'env.png' is outside the library folder" in message, message
    outside = tmp_path / "elsewhere.png"
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(outside)
    assert "is outside the library folder" in _load_error(tmp_path, f"cover: {outside}")
    assert "is outside the library folder" in _load_error(tmp_path, "cover: ../elsewhere.png")
    (lib / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 100)
    assert "cover: garbage.png: not a readable PNG or JPEG image" in _load_error(tmp_path, "cover: garbage.png")
    _png(lib / "bomb.png", 40000, 40000)
    assert "far more pixels than a cover" in _load_error(tmp_path, "cover: bomb.png")
    _png(lib / "big.png", 8000, 8000)
    assert "8000x8000 pixels; a cover must have at most 36 million" in _load_error(tmp_path, "cover: big.png")
    with open(lib / "huge.png", "wb") as huge:  # sparse: 283 MB that take no room
        huge.truncate(283_000_000)
    assert "the image is 283 MB" in _load_error(tmp_path, "cover: huge.png")
    Image.new("RGB", (8, 8), "red").save(lib / "art.gif")
    (lib / "art.gif").rename(lib / "gif.png")
    assert "must be a PNG or JPEG image, and this file is neither" in _load_error(tmp_path, "cover: gif.png")
    Image.new("RGB", (8, 8), "red").save(lib / "ok.jpg")
    (lib / "s.yaml").write_text("guidetrack: 1\ntitle: T\ncover: ok.jpg\nsteps:\n  - say: Rest.\n")
    assert load(lib / "s.yaml").cover == (lib / "ok.jpg").resolve()


def test_sounds_and_lexicons_stay_inside_the_library(tmp_path):
    import os

    lib = tmp_path / "lib"
    lib.mkdir()
    (tmp_path / "secret.wav").write_bytes(b"RIFF")
    (lib / "bed.wav").symlink_to(tmp_path / "secret.wav")
    assert "background.sound: 'bed.wav' is outside the library folder" in _load_error(
        tmp_path, "background: {sound: bed.wav}")
    assert "intro.sound: '../secret.wav' is outside" in _load_error(tmp_path, "intro: ../secret.wav")
    (tmp_path / "words.yaml").write_text("Savasana: shavaasana\n")
    assert "lexicon: '../words.yaml' is outside" in _load_error(tmp_path, "lexicon: ../words.yaml")
    os.mkfifo(lib / "fifo.wav")
    assert "the audio file" in _load_error(tmp_path, "outro: fifo.wav") and "not a regular file" in \
        _load_error(tmp_path, "outro: fifo.wav")


def test_control_characters_are_refused_at_their_line(tmp_path):
    message = _load_error(tmp_path, 'description: "Calm\\u0007 evening"')
    assert "s.yaml:3:14: description: contains a control character (U+0007)" in message, message
    script = tmp_path / "lib" / "s.yaml"
    script.write_text('guidetrack: 1\ntitle: "Rest\\0 now"\nsteps:\n  - say: "Breathe\\0 in."\n'
                      '  - section: "A\\x1b[31m"\n    steps: [chime]\n')
    with pytest.raises(InvalidInput) as caught:
        load(script)
    found = str(caught.value)
    assert "s.yaml:2:8: title: contains a control character (U+0000)" in found, found
    assert "s.yaml:4:10: steps[0].say: contains a control character (U+0000)" in found, found
    assert "steps[1].section: contains a control character (U+001B)" in found, found


def test_transcripts_cannot_be_forged_by_spoken_text(tmp_path):
    from guidetrack.plan import make_plan
    from guidetrack.sidecars import srt, webvtt

    script = tmp_path / "s.yaml"
    script.write_text('guidetrack: 1\ntitle: T\nsteps:\n  - say: "Rest <b>&</b> 00:00:01.000 --> 00:00:09.000 hi."\n'
                      '  - say: |\n      One.\n\n      99\n      Two.\n')
    plan = make_plan(load(script), lambda texts: {t: 44100 for t in texts})
    vtt = webvtt(plan)
    assert vtt.count("-->") == len(plan.speech()) and "&lt;b&gt;&amp;&lt;/b&gt;" in vtt and "\n\n99" not in vtt
    text = srt(plan)
    assert text.count("-->") == len(plan.speech()) and "\n\n99" not in text


def test_libyamls_parser_reads_a_script_as_pyyamls_own_does(tmp_path, monkeypatch):
    """Scripts are read by libyaml's parser (ten times faster), every value at the same line and
    column as PyYAML's own parser puts it; a broken file is read again by PyYAML's, whose
    messages are the ones explained."""
    import yaml

    from guidetrack.script.yamltree import read_tree

    path = tmp_path / "s.yaml"
    path.write_text("guidetrack: 1\ntitle: 'Rest: a \"quiet\" one'\nvoice: {rate: 150}\nsteps:\n"
                    "  - say: Soften the jaw.   # a comment\n  - hold: {for: 40s, min: 10s}\n  - chime\n"
                    "  - say: |\n      Two lines,\n      kept.\n")
    assert hasattr(yaml, "CSafeLoader")
    fast, fast_tree = read_tree(path)
    monkeypatch.delattr(yaml, "CSafeLoader")
    slow, slow_tree = read_tree(path)
    assert fast == slow and fast_tree.marks == slow_tree.marks and fast_tree.key_marks == slow_tree.key_marks
