"""A corpus of broken and hostile scripts: each must give its message, at its line, never a traceback.

The files are in tests/corpus/. Every one of them fails `validate --strict`; the last three only
have warnings, so they pass without --strict.
"""

import pytest

from guidetrack.render import check_file
from helpers import CORPUS

# file -> (line, what the message must say)
EXPECTED = {
    "not-yaml.yaml": (3, "not valid YAML"),
    "tab-indent.yaml": (4, "not valid YAML: a tab indents this line"),
    "binary.yaml": (1, "binary data, not a YAML script"),
    "empty.yaml": (1, "the file is empty"),
    "whitespace-only.yaml": (1, "the file is empty"),
    "comment-only.yaml": (1, "the file has no content"),
    "latin1.yaml": (2, "not UTF-8 text (byte 0xe9); save it as UTF-8"),
    "list-at-top.yaml": (1, "a script is a mapping"),
    "scalar-at-top.yaml": (1, "a script is a mapping"),
    "alias-bomb.yaml": (1, "alias bomb"),
    "python-tag.yaml": (4, "the tag !!python/object/apply:os.system is not allowed"),
    "custom-tag.yaml": (4, "the tag !include is not allowed"),
    "duplicate-key.yaml": (4, "the key 'steps' appears twice"),
    "key-not-text.yaml": (4, "keys must be text"),
    "deep-nesting.yaml": (4, "nesting is deeper than 40 levels"),
    "deep-sections.yaml": (42, "nesting is deeper than 40 levels"),
    "huge-number.yaml": (4, "'1e999' is not a usable duration"),
    "huge-integer.yaml": (4, "longer than 48 hours"),
    "negative-pause.yaml": (4, "'-3s' is negative"),
    "zero-hold.yaml": (4, "hold: must be longer than 0"),
    "zero-duration.yaml": (3, "duration: must be longer than 0"),
    "absurd-cycles.yaml": (4, "greater than the maximum of 10000"),
    "negative-cycles.yaml": (4, "less than the minimum of 1"),
    "very-long-text.yaml": (4, "longer than 5000 characters; split it"),
    "wrong-version.yaml": (1, "must be 1 (this is format version 1)"),
    "no-title.yaml": (1, "missing the key 'title'"),
    "null-steps.yaml": (3, "steps: expected a list, got nothing"),
    "misspelt-key.yaml": (2, "titel: unknown key (did you mean 'title'?)"),
    "unknown-preset.yaml": (4, "unknown breath preset 'boxx' (did you mean 'box'?)"),
    "unknown-step.yaml": (4, "unknown step 'brethe' (did you mean 'breathe'?)"),
    "bad-inline-pause.yaml": (4, "inline pause [a while]"),
    "side-outside-sides.yaml": (4, "{side} only works inside a `sides` block"),
    "min-above-max.yaml": (4, "needs min <= for <= max"),
    "missing-background.yaml": (3, "rain-on-the-roof.ogg does not exist"),
    "broken-background.yaml": (3, "ffmpeg cannot decode this audio file"),
    "duck-too-deep.yaml": (3, "background.duck: a dip of 60 dB silences the background"),
    "duck-not-a-level.yaml": (5, "background.duck.depth: 'lots' is not a level"),
    "unknown-outro-sound.yaml": (3, "'bowel' is neither a generated sound (chime, bowl) (did you mean 'bowl'?)"),
    "broken-intro.yaml": (3, "intro.sound: "),
    "impossible-duration.yaml": (3, "cannot fit duration: the script can be between 2:05 and 2:20 long"),
    "include-cycle.yaml": (5, "include cycle: cycle-block.yaml -> cycle-block.yaml"),
    "cycle-block.yaml": (5, "include cycle: cycle-block.yaml -> cycle-block.yaml"),
    "include-outside.yaml": (4, "is outside the library folder"),
    "include-missing.yaml": (4, "no block file 'poses/nowhere.yaml'"),
    "include-unknown-param.yaml": (5, "has no parameter 'sid' (did you mean 'side'?)"),
    "side-block.yaml": (6, "unknown step 'sya' (did you mean 'say'?)"),
    # warnings: errors only with --strict
    "fast-voice.yaml": (3, "260 words a minute is fast for relaxation"),
    "cue-too-long.yaml": (4, "longer than its 0.40 s slot"),
    "hold-shorter-than-reminders.yaml": (4, "shorter than its reminders need"),
}
WARNINGS_ONLY = {"fast-voice.yaml", "cue-too-long.yaml", "hold-shorter-than-reminders.yaml"}


def test_the_corpus_is_complete():
    assert sorted(EXPECTED) == sorted(p.name for p in CORPUS.glob("*.yaml"))
    assert len(EXPECTED) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_file_gives_its_message(name, cache_dir):
    line, message = EXPECTED[name]
    checked = check_file(CORPUS / name, CORPUS, cache_dir)
    found = [str(p) for p in checked.problems]
    assert any(f":{line}:" in f and message in f for f in found), found
    assert checked.failed(strict=True)
    assert checked.failed(strict=False) == (name not in WARNINGS_ONLY), found


def test_validate_reports_everything_in_one_run_and_exits_2(gt):
    result = gt("validate", "--strict", CORPUS)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert f"{len(EXPECTED)} files checked, {len(EXPECTED)} with problems" in result.stderr
    lenient = gt("validate", CORPUS)
    assert lenient.returncode == 2
    assert f"{len(EXPECTED) - len(WARNINGS_ONLY)} with problems" in lenient.stderr
    assert sorted(line.split()[1].rsplit("/", 1)[1] for line in lenient.stdout.splitlines()
                  if line.startswith("ok ")) == sorted(WARNINGS_ONLY)


def test_too_large_and_missing_files(gt, tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("guidetrack: 1\ntitle: T\nsteps:\n" + "  - pause: 1\n" * 100_000)
    result = gt("validate", big, tmp_path / "missing.yaml", tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "too large for a script" in result.stderr
    assert "missing.yaml: no such file" in result.stderr
