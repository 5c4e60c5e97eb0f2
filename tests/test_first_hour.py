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


def _voices(tmp_path, **files: str):
    (tmp_path / "voices").mkdir(exist_ok=True)
    for name, text in files.items():
        (tmp_path / "voices" / f"{name}.yaml").write_text("guidetrack-voice: 1\n" + text)


def test_a_profile_extends_another_and_keeps_its_lexicon_unless_it_says_otherwise(tmp_path):
    _voices(tmp_path, soft="extends: calm\nrate: 120\nlexicon: {Tadasana: tah dah sah nah}\n",
            bare="extends: calm\nlexicon: null\n", calm="extends: calm\npitch: 40\n")
    script = tmp_path / "s.yaml"
    builtin = load_profile_named("calm")
    for name, words in (("soft", None), ("bare", 0)):
        script.write_text(f"guidetrack: 1\ntitle: T\nvoice: {name}\nsteps:\n  - say: Rest.\n")
        voice = load(script).voice
        assert (voice.engine, voice.voice) == (builtin.engine, builtin.voice)
        assert voice.pitch == 40  # from voices/calm.yaml, which extends the built-in calm in turn
        if words is None:
            said = dict(voice.lexicon)
            assert voice.rate == 120 and said["Tadasana"] == "tah dah sah nah"
            assert set(dict(builtin.lexicon)) < set(said)  # the yoga lexicon is kept
        else:
            assert voice.lexicon == ()


def test_the_readme_profile_works_as_written_and_validate_checks_a_profile_as_one(tmp_path):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    example = re.search(r"```yaml\n# voices/slow.yaml\n(.*?)```", readme, re.S).group(1)
    (tmp_path / "voices").mkdir()
    (tmp_path / "voices" / "slow.yaml").write_text(example)
    script = tmp_path / "s.yaml"
    script.write_text("guidetrack: 1\ntitle: T\nvoice: slow\nsteps:\n  - say: Rest in Savasana.\n")
    assert load(script).voice.lexicon  # its lexicon file is the one that comes with guidetrack
    checked = check_file(tmp_path / "voices" / "slow.yaml")
    assert checked.kind == "profile" and not checked.problems
    (tmp_path / "voices" / "loop.yaml").write_text("guidetrack-voice: 1\nextends: loop2\n")
    (tmp_path / "voices" / "loop2.yaml").write_text("guidetrack-voice: 1\nextends: loop\n")
    (tmp_path / "voices" / "half.yaml").write_text("guidetrack-voice: 1\nrate: 120\n")
    assert any("in a circle" in str(p) for p in check_file(tmp_path / "voices" / "loop.yaml").problems)
    assert any("missing the key 'engine' (or `extends: calm`" in str(p)
               for p in check_file(tmp_path / "voices" / "half.yaml").problems)


def load_profile_named(name: str):
    from guidetrack.script import load_profile

    return load_profile(name)


@pytest.mark.integration
def test_guidetrack_never_puts_its_own_name_in_a_teachers_tags(tmp_path):
    import subprocess
    import sys

    from mutagen.id3 import ID3

    script = tmp_path / "s.yaml"
    script.write_text(HEAD + "steps:\n  - say: Rest.\n")
    out = tmp_path / "s.mp3"
    subprocess.run([sys.executable, "-m", "guidetrack", "render", str(script), "-o", str(out)], check=True,
                   capture_output=True)
    tags = ID3(out)
    assert str(tags["TIT2"]) == "T"
    assert not {"TPE1", "TALB"} & set(tags.keys()) and not tags.getall("COMM")
    assert "guidetrack" not in " ".join(str(frame) for key, frame in tags.items() if key != "APIC:Cover").lower()


def test_plan_shows_holds_as_fitted_pauses_sides_the_beds_fades_and_a_summary(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "s.yaml"
    script.write_text(HEAD + "duration: 1m\nbackground: {sound: pink-noise, fade_in: 2s, fade_out: 4s}\n"
                      "steps:\n  - sides: [right, left]\n    steps:\n      - say: Stretch the {side} leg.\n"
                      "      - hold: {for: 10s, min: 5s, max: 40s}\n  - pause: 3s\n")
    done = subprocess.run([sys.executable, "-m", "guidetrack", "plan", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "T  (1:00)" in out and "-- right side --" in out and "-- left side --" in out
    assert "hold    " in out and "(written 0:10, fitting added" in out and "[min 0:05, max 0:40]" in out
    assert "pause   0:03" in out and "bed     pink-noise starts, fading in over 0:02" in out
    assert "0:56  bed     pink-noise fades out over 0:04" in out
    assert out.splitlines()[1].strip().startswith("speech ") and "words a minute" in out.splitlines()[1]


def _plan(tmp_path, body: str):
    from guidetrack.render import plan_script

    script = tmp_path / "s.yaml"
    script.write_text(HEAD + body)
    return plan_script(load(script), tmp_path / "cache")[0]


def test_an_elastic_breathe_step_fits_whole_cycles_and_the_holds_take_the_rest(tmp_path):
    from guidetrack.plan import SpanKind
    from guidetrack.units import to_samples

    plan = _plan(tmp_path, "duration: 3m\nsteps:\n  - say: Breathe with me.\n"
                 "  - breathe: {pattern: relax, cycles: 6, min: 3 cycles, max: 4m, cue: tone}\n"
                 "  - hold: {for: 20s, min: 10s, max: 30s}\n")
    assert plan.length == to_samples(180)
    breathe = next(s for s in plan.spans if s.kind is SpanKind.BREATHE)
    cycle = to_samples(10)  # relax: 4 in, 6 out
    assert breathe.length % cycle == 0 and breathe.length // cycle > 6  # stretched, in whole cycles
    hold = next(s for s in plan.spans if s.kind is SpanKind.HOLD)
    assert to_samples(10) <= hold.length <= to_samples(30)
    tones = [e for e in plan.events if e.kind == "tone"]
    assert len(tones) == 2 * breathe.length // cycle
    assert all((e.start - breathe.start) % cycle in (0, to_samples(4)) for e in tones)  # on the grid


def test_a_tone_marks_every_phase_with_its_own_tone_for_holds(tmp_path):
    import numpy as np

    from guidetrack.mix import tone

    plan = _plan(tmp_path, "steps:\n  - breathe: {pattern: box, cycles: 2, cue: tone}\n")
    assert [e.text for e in plan.events] == ["in", "hold", "out", "rest"] * 2
    assert [e.start for e in plan.events] == [k * 4 * 44100 for k in range(8)]

    def pitch(phase: str) -> float:
        audio = tone(17640, phase)
        return float(np.argmax(np.abs(np.fft.rfft(audio))) * 44100 / len(audio))

    assert pitch("in") > pitch("hold") > pitch("out") and pitch("hold") == pitch("rest")


def test_breathe_bounds_are_checked_at_their_line(tmp_path):
    found = problems(tmp_path, "steps:\n  - breathe: {pattern: relax, cycles: 6, min: 8 cycles}\n")
    assert len(found) == 1 and "s.yaml:5:" in found[0] and "needs min <= cycles <= max; here 8 <= 6 <= 6" in found[0]


@pytest.mark.integration
def test_a_render_tells_its_stages_off_a_terminal_and_quiet_silences_them(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "s.yaml"
    script.write_text(HEAD + "steps:\n  - say: Let the breath settle by itself.\n")

    def render(*extra: str) -> str:
        done = subprocess.run([sys.executable, "-m", "guidetrack", "render", str(script), "-o", str(tmp_path / "s.mp3"),
                               "--cache-dir", str(tmp_path / "cache"), *extra], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stderr

    lines = render().splitlines()
    assert lines[:4] == ["  speaking 1 new clip", "  setting the levels", "  mixing and encoding",
                         "  measuring the finished file"]
    quiet = render("--quiet")
    assert quiet.startswith("wrote ") and "mixing" not in quiet
