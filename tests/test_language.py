"""Sessions in the teacher's language (issue 16): `language:` and `cues:`.

The plans use a stand-in for spoken lengths (the words are what is tested); the renders use the
real engine (espeak-ng's German and Spanish voices) and encoder, measured like the English ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from guidetrack.errors import InvalidInput
from guidetrack.languages import known, parse
from guidetrack.plan import make_plan
from guidetrack.script import load, load_all
from helpers import decode, ffprobe_duration, plan_json, window_db
from meter import speech_lufs, true_peak

SCRIPT = """guidetrack: 1
title: {title}
language: {language}
steps:
  - say: {say}
  - breathe: {{pattern: box, cycles: 1, cue: words}}
  - breathe: {{pattern: 4-7-8, cycles: 1, cue: count}}
  - sides: [right, left]
    steps:
      - say: "{side_text}"
      - hold: 10s
"""
TEXTS = {
    "de": ("Übung", "Leg dich bequem hin und lass die Schultern schwer werden. Atme ruhig durch die Nase.",
           "Spüre die Seite {side}."),
    "es": ("Práctica", "Túmbate con calma y deja que los hombros se relajen. Respira despacio por la nariz.",
           "Siente el lado {side}."),
}
ENGLISH = {"Breathe in", "Hold", "And out", "Rest", "In", "Out", "two", "three", "four", "five", "six", "seven",
           "eight", "right", "left"}


def write(folder: Path, language: str, extra: str = "", name: str = "script.yaml") -> Path:
    title, say, side_text = TEXTS.get(language.split("-")[0], TEXTS["de"])
    path = folder / name
    path.write_text(SCRIPT.format(title=title, language=language, say=say, side_text=side_text) + extra)
    return path


def lengths(texts):
    return {text: 2_000 * len(text) for text in texts}  # about 1 s for every 22 characters


def added_words(script) -> list[str]:
    """Every word in the plan that the teacher did not write."""
    plan = make_plan(script, lengths)
    written = {s.text for s in script.steps if hasattr(s, "text")}
    spoken = [e.text for e in plan.events if e.kind == "speech"]
    return [t for t in spoken if t not in written and not t.startswith(("Spüre", "Siente"))]


@pytest.mark.parametrize("language", ["de", "es"])
def test_every_word_guidetrack_adds_is_in_the_scripts_language(tmp_path, language):
    script = load(write(tmp_path, language))
    words = parse(language).words
    added = added_words(script)
    assert set(added) == {*words.cues, words.first_count("in"), words.first_count("hold"),
                          words.first_count("out"), *words.numbers[:7]}  # 4-7-8 counts to eight
    assert not set(added) & ENGLISH
    plan = make_plan(script, lengths)
    sides = [e.text for e in plan.events if e.text.startswith(("Spüre", "Siente"))]
    assert [s.rsplit(" ", 1)[1].rstrip(".") for s in sides] == list(words.sides)  # right, then left, in the language
    assert script.voice.engine == "pyttsx3" and script.voice.voice == parse(language).espeak
    assert script.voice.lexicon == ()  # the English lexicon's respellings are not for another language


def test_english_is_the_default_and_keeps_its_words_and_voice(tmp_path):
    path = tmp_path / "en.yaml"
    path.write_text("guidetrack: 1\ntitle: X\nsteps:\n  - breathe: {pattern: box, cycles: 1, cue: words}\n")
    script = load(path)
    assert script.language == "en" and (script.voice.engine, script.voice.voice) == ("hibari", "heart")
    assert script.voice.lexicon
    assert [e.text for e in make_plan(script, lengths).events] == ["Breathe in", "Hold", "And out", "Rest"]


def test_a_cues_override_replaces_exactly_the_words_it_names(tmp_path):
    script = load(write(tmp_path, "de", "cues: {in: Tief einatmen, left: linke}\n"))
    added = set(added_words(script))
    german = parse("de").words
    assert "Tief einatmen" in added and german.cue("in") not in added
    assert {german.cue("hold"), german.cue("out"), german.cue("rest"), *german.numbers[:6]} <= added
    sides = [e.text for e in make_plan(script, lengths).events if e.text.startswith("Spüre")]
    assert sides == ["Spüre die Seite rechts.", "Spüre die Seite linke."]


def test_cues_in_a_variant_a_block_and_a_voice_profile(tmp_path):
    (tmp_path / "voices").mkdir()
    (tmp_path / "voices" / "sanft.yaml").write_text(
        "guidetrack-voice: 1\nengine: pyttsx3\nvoice: de\nrate: 130\ncues: {out: Langsam ausatmen}\n")
    (tmp_path / "atem.yaml").write_text(
        "guidetrack: 1\nblock: Atem\ncues: {in: Ein}\nsteps:\n  - breathe: {pattern: relax, cycles: 1}\n")
    path = tmp_path / "s.yaml"
    path.write_text("guidetrack: 1\ntitle: X\nlanguage: de\nvoice: sanft\n"
                    "variants:\n  normal: {}\n  anders: {cues: {in: Jetzt ein}}\n"
                    "steps:\n  - breathe: {pattern: relax, cycles: 1}\n  - include: atem.yaml\n")
    normal, other = load_all(path)

    def cues(script):
        return [e.text for e in make_plan(script, lengths).events if e.kind == "speech"]

    assert cues(normal) == ["Einatmen", "Langsam ausatmen", "Ein", "Langsam ausatmen"]  # profile, then the block's own
    assert cues(other) == ["Jetzt ein", "Langsam ausatmen", "Ein", "Langsam ausatmen"]
    assert normal.voice.voice == "de" and normal.voice.rate == 130


@pytest.mark.parametrize("tag, expected", [
    ("ge", "did you mean 'de'"), ("german", "did you mean 'de'"), ("brazilian", "did you mean 'pt-BR'"),
    ("sp", "known: de, en, es"), ("klingon", "known:"),
])
def test_an_unknown_language_is_an_error_at_its_line(tmp_path, tag, expected):
    path = tmp_path / "x.yaml"
    path.write_text(f"guidetrack: 1\ntitle: X\nlanguage: {tag}\nsteps:\n  - say: Hallo.\n")
    with pytest.raises(InvalidInput) as err:
        load(path)
    problem = err.value.problems[0]
    assert problem.where.line == 3 and expected in problem.message, problem


def test_regions_choose_the_voice_and_the_words():
    assert parse("pt-BR").espeak == "pt-br" and "dezesseis" in parse("pt-BR").words.numbers
    assert "dezasseis" in parse("pt").words.numbers and parse("pt").espeak == "pt"
    assert parse("es-MX").espeak == "es-419" and parse("en-GB").espeak == "en-gb"
    assert parse("DE").tag == "de" and parse("pt_br").tag == "pt-BR"
    # any region speaks its language; a script subtag and variants are read past
    assert parse("de-DE").espeak == "de" and parse("en-AU").espeak == "en-us" and parse("de-Latn-DE").tag == "de-DE"
    for tag in known():  # every language: four phases, counts to twenty at least, both sides
        words = parse(tag).words
        assert len(words.cues) == 4 and len(words.numbers) >= 19 and all(words.sides)


def test_text_in_another_language_than_declared_is_a_warning(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("guidetrack: 1\ntitle: X\nlanguage: de\nsteps:\n"
                    "  - say: Lie on your back and let the legs rest on the wall. Feel the weight of the legs.\n"
                    "  - say: Breathe in slowly, and let it go with the breath. Now rest.\n")
    warnings = [w for w in load(path).warnings if "looks like" in w.message]
    assert len(warnings) == 1 and "English" in warnings[0].message and warnings[0].where.line == 3
    german = write(tmp_path, "de", name="de.yaml")
    assert not [w for w in load(german).warnings if "looks like" in w.message]


# ---------------------------------------------------------------- real renders


@pytest.mark.integration
@pytest.mark.parametrize("language", ["de", "es"])
def test_a_render_in_another_language_is_measured_like_an_english_one(gt, tmp_path, language):
    script = write(tmp_path, language)
    out = tmp_path / f"{language}.mp3"
    done = gt("render", script, "-o", out, check=True)
    assert "warning" not in done.stderr, done.stderr
    plan = plan_json(gt, script)
    assert plan["language"] == language and plan["voice"] == {"engine": "pyttsx3", "voice": parse(language).espeak}
    assert abs(ffprobe_duration(out) - plan["duration"]) < 0.1
    audio = decode(out)
    for event in (e for e in plan["events"] if e["kind"] == "speech"):  # speech where the plan puts it
        assert window_db(audio, event["start"], event["start"] + min(0.4, event["duration"])) > -45, event
    assert abs(speech_lufs(audio, plan) + 16) < 0.5 and true_peak(audio) <= -1.0


@pytest.mark.integration
def test_say_speaks_in_the_language_given(gt, tmp_path):
    out = tmp_path / "de.wav"
    done = gt("say", "Atme ruhig ein und aus.", "--language", "de", "-o", out, check=True)
    assert "pyttsx3 de," in done.stdout and out.stat().st_size > 20_000
    bad = gt("say", "Hallo.", "--language", "xx", "-o", out)
    assert bad.returncode == 2 and "--language" in bad.stderr


def test_sides_keep_the_case_they_are_written_in(tmp_path):
    path = tmp_path / "s.yaml"
    for language, expected in (("en", ["Right side.", "Left side."]), ("de", ["Rechts side.", "Links side."])):
        path.write_text(f"guidetrack: 1\ntitle: X\nlanguage: {language}\nsteps:\n  - sides: [Right, Left]\n"
                        "    steps:\n      - say: \"{side} side.\"\n")
        assert [e.text for e in make_plan(load(path), lengths).events] == expected


def test_voice_fields_in_another_language_start_from_espeak_ngs_profile(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("guidetrack: 1\ntitle: X\nlanguage: de\nvoice: {rate: 150}\nsteps:\n  - say: Ruhe.\n")
    script = load(path)
    assert (script.voice.engine, script.voice.voice, script.voice.rate) == ("pyttsx3", "de", 150)
    assert not script.warnings


def test_the_language_file_is_a_source_of_the_script(tmp_path):
    """So a build renders again when the language's words change."""
    script = load(write(tmp_path, "de"))
    assert parse("de").file in script.sources


@pytest.mark.parametrize("cues, line, message", [
    ('{in: "..."}', 4, "no words to speak"), ("{out: 'Aus [2s]'}", 4, "no [pauses]"), ("{numbers: [eins, '{x}']}", 4, "no [pauses]"),
])
def test_cue_words_are_checked_at_their_line(tmp_path, cues, line, message):
    path = tmp_path / "s.yaml"
    path.write_text(f"guidetrack: 1\ntitle: X\nlanguage: de\ncues: {cues}\nsteps:\n  - breathe: {{pattern: box, cycles: 1}}\n")
    with pytest.raises(InvalidInput) as err:
        load(path)
    assert err.value.problems[0].where.line == line and message in err.value.problems[0].message


def test_a_blocks_cues_are_for_its_breathing_only(tmp_path):
    (tmp_path / "b.yaml").write_text("guidetrack: 1\nblock: B\ncues: {right: Steuerbord}\nsteps:\n  - say: Hallo.\n")
    path = tmp_path / "s.yaml"
    path.write_text("guidetrack: 1\ntitle: X\nsteps:\n  - include: b.yaml\n")
    with pytest.raises(InvalidInput, match="unknown key"):
        load(path)


@pytest.mark.integration
def test_a_library_in_german_is_published_in_german(gt, tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    write(library, "de", name="sitzung.yaml")
    out = tmp_path / "out"
    gt("build", library, "-o", out, "--base-url", "https://example.org/kurse/", check=True)
    assert '<html lang="de">' in (out / "index.html").read_text()
    assert 'srclang="de"' in (out / "index.html").read_text()
    feed = (out / "feed.xml").read_text()
    assert "<language>de</language>" in feed and 'language="de"' in feed
