"""Issue 18: what a teacher trips over in the first hour, each with what to change."""

from __future__ import annotations

import pytest

from guidetrack.errors import InvalidInput
from guidetrack.render import check_file
from guidetrack.script import load
from guidetrack.units import parse_duration

HEAD = "guidetrack: 1\ntitle: T\nvoice: calm\n"


def problems(tmp_path, body: str) -> list[str]:
    script = tmp_path / "s.yaml"
    script.write_text(HEAD + body)
    return [str(p) for p in check_file(script).problems]


@pytest.mark.parametrize("body, line, message", [
    ("steps:\n  - say: Final rest: stretch out\n", 5,
     'text that contains a colon must be quoted: write - say: "Final rest: stretch out"'),
    ("steps:\n  - say: A\n  pause: 2s\n", 6, "this line has no '- ' in front, so it is not an item of the list"),
    ("steps:\n  - sides: [right, left]\n   steps:\n      - say: Hi\n", 6,
     "indented to column 4, but the step above (line 5) has its keys at column 5"),
    ("steps:\n\t- say: A\n", 5, "a tab indents this line; YAML indents with spaces only"),
    ('steps:\n  - say: "Hi there\n  - pause: 2\n', 5, "the quote opened at line 5, column 10 is never closed"),
    ("steps:\n  - say: A\n     - pause: 2s\n", 6, "indented deeper than the one above it"),
    ("steps:\n  - hold:\n    for: 5m\n    min: 3m\n", 6,
     "for, min belong to `hold:` but are not indented under it: indent them two spaces more than `hold`"),
    ("steps:\n  - sides: [right, left]\n    steps:\n      - say: Lift the {Side} leg.\n", 7,
     "'{Side}' is not a field: fields are written in lower case without spaces, as {side}"),
    ("steps:\n  - sides: [right, left]\n    steps:\n      - say: Lift the { side } leg.\n", 7,
     "'{ side }' is not a field"),
    ("steps:\n  - breathe: box\n", 5, "`breathe: box` needs a length: write breathe: {pattern: box, cycles: 6}"),
    ("steps:\n  - breathe:\n      pattern: 478\n      cycles: 3\n", 6, "478 is not a breath pattern: did you mean '4-7-8'?"),
])
def test_a_common_slip_gets_one_message_saying_what_to_change(tmp_path, body, line, message):
    found = problems(tmp_path, body)
    assert len(found) == 1, found
    assert f"s.yaml:{line}:" in found[0] and message in found[0], found


def test_shorthands_people_try_are_understood(tmp_path):
    script = tmp_path / "s.yaml"
    script.write_text(HEAD + "duration: 20 min\nbackground: ocean\nsteps:\n  - hold:\n      for: 5 mins\n"
                      "      min: 1 min\n      max: 1 hr\n")
    loaded = load(script)
    assert loaded.background is not None and loaded.background.sound == "ocean"
    assert loaded.duration == 20 * 60 * 44100
    assert [parse_duration(v) for v in ("20 min", "5 mins", "1 hr", "1 hour 30 minutes", "90 secs")] == \
        [1200, 300, 3600, 5400, 90]
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("5 minss")


def test_a_misspelt_shorthand_background_is_suggested(tmp_path):
    with pytest.raises(InvalidInput, match="did you mean 'ocean'"):
        script = tmp_path / "s.yaml"
        script.write_text(HEAD + "background: oceans\nsteps:\n  - say: Rest.\n")
        load(script)
