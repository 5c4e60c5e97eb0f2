"""The words guidetrack adds to a session by itself, in the session's language.

Breath cues ("Breathe in"), counting words ("In, two, three"), and the sides `right` and `left`
come from a data file per language in `languages/` (adding a language is adding a file). A
script's `language:` is a BCP 47 tag (`de`, `es`, `pt-BR`): its language chooses the words, its
region may choose espeak-ng's voice. `cues:` in a voice profile, a script, a variant or a block
replaces any of the words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

FOLDER = Path(__file__).resolve().parent / "languages"
DEFAULT = "en"
PHASES = ("in", "hold", "out", "rest")
SIDES = ("right", "left")
CUE_KEYS = PHASES + SIDES + ("numbers",)  # what `cues:` may replace
# language, then optional script (Latn), region (DE, 419) and anything after (variants, extensions)
TAG = re.compile(r"^([A-Za-z]{2,3})(?:[-_][A-Za-z]{4})?(?:[-_]([A-Za-z]{2}|\d{3}))?(?:[-_][A-Za-z0-9]{1,8})*$")


@dataclass(frozen=True)
class Words:
    """Every word guidetrack may add, in one language."""

    cues: tuple[str, str, str, str]  # said at the start of in, hold, out, rest
    count: tuple[str, str, str, str]  # the first word of each phase when counting
    numbers: tuple[str, ...]  # two, three, ... : the counts after the first word
    sides: tuple[str, str]  # right, left

    def cue(self, phase: str) -> str:
        return self.cues[PHASES.index(phase)]

    def first_count(self, phase: str) -> str:
        return self.count[PHASES.index(phase)]

    def side(self, name: str) -> str:
        """`right` and `left` in the language, in the case the teacher wrote them (Right ->
        Rechts); any other side name as written."""
        if name.lower() not in SIDES:
            return name
        word = self.sides[SIDES.index(name.lower())]
        if name.isupper() and len(name) > 1:
            return word.upper()
        return word[:1].upper() + word[1:] if name[:1].isupper() else word

    def over(self, changes: dict[str, Any]) -> Words:
        """These words with `cues:` overrides applied: a phase's word replaces its spoken cue and
        its first counting word alike."""
        cues, count = list(self.cues), list(self.count)
        for index, phase in enumerate(PHASES):
            if phase in changes:
                cues[index] = count[index] = changes[phase]
        sides = tuple(changes.get(side, word) for side, word in zip(SIDES, self.sides, strict=True))
        numbers = tuple(changes["numbers"]) if "numbers" in changes else self.numbers
        return replace(self, cues=tuple(cues), count=tuple(count), sides=sides, numbers=numbers)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Language:
    tag: str  # as normalised: "de", "pt-BR"
    name: str
    espeak: str  # espeak-ng's voice for it
    words: Words
    common: frozenset[str]  # frequent short words, to notice text in another language
    file: Path  # where its words come from: a source of every script in it


@lru_cache(maxsize=1)
def _files() -> dict[str, dict[str, Any]]:
    # every value is a word: read as text (plain YAML would read `on` or `no` as true or false)
    loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)  # libyaml's parser where PyYAML has it: ten times faster
    return {path.stem: yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
            for path in sorted(FOLDER.glob("*.yaml"))}


def known() -> list[str]:
    """The languages with words, and the regions each names."""
    tags = []
    for code, data in _files().items():
        tags.append(code)
        tags.extend(f"{code}-{region}" for region in data.get("regions", {}))
    return tags


def closest(tag: str) -> str:
    """The known tag nearest to what was written: a language's name or code in another form
    (`german`, `deu`, `brazilian`), or the most similar tag."""
    import difflib

    word = str(tag).strip().lower().replace("_", "-")
    for code, data in _files().items():
        for region, more in (data.get("regions") or {}).items():
            if word in (more or {}).get("aliases", ()):
                return f"{code}-{region}"
    for code, data in _files().items():
        if word in data.get("aliases", ()) or word.split("-")[0] in data.get("aliases", ()):
            return code
    found = difflib.get_close_matches(str(tag), known(), n=1, cutoff=0.5)
    return found[0] if found else ""


def parse(tag: str) -> Language:
    """The language a BCP 47 tag names. Raises ValueError, naming the closest known tag."""
    found = TAG.match(tag.strip()) if isinstance(tag, str) else None
    code = found.group(1).lower() if found else ""
    region = (found.group(2) or "").upper() if found else ""
    files = _files()
    if code not in files:
        near = closest(tag)
        hint = f" (did you mean '{near}'?)" if near else ""
        raise ValueError(f"no words for the language '{tag}'{hint}; known: {', '.join(files)} "
                         f"(a file in {FOLDER.name}/ adds one)")
    data = dict(files[code])
    regions = {str(k).upper(): v for k, v in data.get("regions", {}).items()}
    if region in regions:  # a region with its own voice or words; any other speaks the language's
        data.update(regions[region] or {})
    words = Words(tuple(data["cues"][p] for p in PHASES), tuple(data["count"][p] for p in PHASES),
                  tuple(data["numbers"]), tuple(data["sides"][s] for s in SIDES))
    return Language(f"{code}-{region}" if region else code, data["name"], data["espeak"], words,
                    frozenset(w.lower() for w in data.get("common", ())), FOLDER / f"{code}.yaml")


def is_english(language: Language | str | None) -> bool:
    """Whether a language (or tag) is English: hibari's, and the built-in lexicon's."""
    tag = language.tag if isinstance(language, Language) else (language or DEFAULT)
    return tag.replace("_", "-").split("-")[0].lower() == DEFAULT


def looks_like(texts: list[str], declared: Language) -> Language | None:
    """Another language the texts are plainly written in (many more of its common words than
    of the declared one's), or None. Cheap, and quiet when unsure."""
    words = [w for text in texts for w in re.findall(r"[^\W\d_]+", text.lower())]
    if len(words) < 12:
        return None
    def score(language: Language) -> int:
        return sum(w in language.common for w in words)
    best = max((parse(code) for code in _files()), key=score)
    if best.tag.split("-")[0] != declared.tag.split("-")[0] and score(best) >= 6 and score(best) >= 3 * max(score(declared), 1):
        return best
    return None
