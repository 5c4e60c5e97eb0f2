"""Script -> Plan: the timeline of a track, without audio.

Pure: breath maths, inline pauses, sides, holds with reminders and fitting to
the target duration. The only thing it needs from outside is the spoken length
of each utterance, asked for once through `measure`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from .errors import InvalidInput, Location, Problem, Severity
from .languages import Words
from .languages import parse as parse_language
from .script import (
    SIDE_FIELD,
    Breathe,
    BreathPattern,
    Bumper,
    Chime,
    Cue,
    Hold,
    Pause,
    Say,
    Script,
    Section,
    Sides,
    Step,
    split_inline,
)
from .units import SAMPLE_RATE, Samples, format_clock, to_samples, to_seconds

CHIME_LENGTH = to_samples(6.0)  # a chime step: strike and ring out
BOWL_LENGTH = to_samples(12.0)  # a singing bowl: struck, sings and fades
GENERATED_LENGTHS = {"chime": CHIME_LENGTH, "bowl": BOWL_LENGTH}
MIN_CHAPTER = to_samples(1.0)  # a shorter stretch joins the chapter before it
TONE_LENGTH = to_samples(0.4)  # a soft tone marking a breath phase
FADE_STEP_DB = 3.0  # each cycle of a fading breath cue is this much softer than the one before
REMINDER_MARGIN = to_samples(1.0)  # quiet kept around each reminder in a hold
MAX_TRACK = to_samples(48 * 3600)

ENGLISH = parse_language("en").words

# One measure call covers every utterance: text -> its spoken length in samples.
Measure = Callable[[Sequence[str]], Mapping[str, Samples]]
# The length of an audio file (an intro or outro), in samples.
SoundLength = Callable[[str], Samples]


class Kind(StrEnum):
    """What an event on the timeline plays."""

    SPEECH = "speech"  # a clip of the voice; its text
    CHIME = "chime"  # a generated chime or bowl
    TONE = "tone"  # a soft tone on a breath phase
    SOUND = "sound"  # an intro's or outro's sound: generated, or an audio file


@dataclass(frozen=True)
class Event:
    """Something audible on the timeline."""

    start: Samples
    length: Samples
    kind: Kind
    text: str = ""  # what is said; a tone's breath phase; a sound's name or file; "bowl" for a bowl chime
    gain_db: float = 0.0  # relative to the sound's usual level (fading breath cues); a sound's, to the voice

    def __post_init__(self) -> None:
        if not isinstance(self.kind, Kind):
            object.__setattr__(self, "kind", Kind(self.kind))


class SpanKind(StrEnum):
    """A stretch of the timeline that is not an event: what `plan` shows besides the sounds."""

    HOLD = "hold"  # a held pose: its fitted length, and what the script asked
    PAUSE = "pause"
    BREATHE = "breathe"  # paced breathing: whole cycles of its pattern
    SIDE = "side"  # where a side of a `sides` block begins (no length)


@dataclass(frozen=True)
class Span:
    start: Samples
    length: Samples
    kind: SpanKind
    label: str = ""  # a side's name; a breath pattern's name and cycles
    nominal: Samples = 0  # a hold's written length (`for:`)
    low: Samples = 0  # a hold's `min`, `max` (equal to nominal when it is not elastic)
    high: Samples = 0
    pattern: BreathPattern | None = None  # breathing's pattern

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"start": round(to_seconds(self.start), 6), "duration": round(to_seconds(self.length), 6),
                                 "kind": self.kind.value}
        if self.label:
            found["label"] = self.label
        if self.kind is SpanKind.HOLD:
            found.update(written=to_seconds(self.nominal), min=to_seconds(self.low), max=to_seconds(self.high))
        return found


@dataclass(frozen=True)
class Chapter:
    title: str
    start: Samples
    end: Samples


@dataclass(frozen=True)
class Plan:
    script: Script
    length: Samples
    events: tuple[Event, ...]
    chapters: tuple[Chapter, ...]
    warnings: tuple[Problem, ...] = ()
    holds: tuple[Samples, ...] = field(default=())  # each hold's fitted length, in script order
    bed: tuple[Samples, Samples] = (0, 0)  # where the background plays: between intro and outro
    spans: tuple[Span, ...] = ()  # holds, pauses, breathing and sides, in time order

    def breath_phases(self) -> list[tuple[Samples, Samples, str]]:
        """(start, length, phase) of every breath phase the script paces: in, hold, out, rest."""
        found = []
        for span in self.spans:
            if span.kind is SpanKind.BREATHE and span.pattern is not None:
                cycle = span.pattern.cycle
                for k in range(span.length // cycle):
                    offset = span.start + k * cycle
                    for phase, length in span.pattern.phases():
                        if length > 0:
                            found.append((offset, length, phase))
                        offset += length
        return found

    def speech(self) -> tuple[Event, ...]:
        return tuple(e for e in self.events if e.kind is Kind.SPEECH)

    def cache_key(self, digest: Callable[[str], str]) -> dict[str, Any]:
        """Everything in the timeline that changes the mix's samples, and nothing about where the
        script lies or how it is written (no paths, titles or line numbers): an audio file is
        named by `digest`, its content's hash."""
        def sound(event: Event) -> str:
            return digest(event.text) if event.kind is Kind.SOUND and event.text not in GENERATED_LENGTHS else event.text

        background = self.script.background
        return {"length": self.length, "sample_rate": SAMPLE_RATE, "bed": list(self.bed),
                "background": background.cache_key(digest) if background else None,
                "events": [[e.start, e.length, e.kind.value, sound(e), e.gain_db] for e in self.events]}

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.script.title,
            "language": self.script.language,
            "voice": {"engine": self.script.voice.engine, "voice": self.script.voice.voice},
            "duration": to_seconds(self.length),
            "sample_rate": SAMPLE_RATE,
            "events": [
                {"start": round(to_seconds(e.start), 6), "duration": round(to_seconds(e.length), 6),
                 "kind": e.kind.value, **({("sound" if e.kind in (Kind.SOUND, Kind.CHIME) else "text"): e.text} if e.text else {}),
                 **({"gain_db": e.gain_db} if e.gain_db else {})}
                for e in self.events
            ],
            "background": {"start": round(to_seconds(self.bed[0]), 6), "end": round(to_seconds(self.bed[1]), 6)}
            if self.script.background else None,
            "chapters": [
                {"title": c.title, "start": round(to_seconds(c.start), 6), "end": round(to_seconds(c.end), 6)}
                for c in self.chapters
            ],
            "spans": [s.to_json() for s in self.spans],
            "warnings": [str(w) for w in self.warnings],
        }


# ---------------------------------------------------------------- flattening

@dataclass(frozen=True)
class _Utterances:
    """A `say`: texts and inline pauses, then the narrator's gap."""

    parts: tuple[str | Samples, ...]
    gap: Samples


@dataclass(frozen=True)
class _HoldItem:
    hold: Hold
    reminders: tuple[str, ...]
    index: int  # position among all holds, for fitting


@dataclass(frozen=True)
class _Side:
    """Where a side of a `sides` block begins."""

    name: str


@dataclass(frozen=True)
class _Mark:
    title: str
    opening: bool
    kind: str = "section"  # "section" | "pose" | "intro" | "outro"


@dataclass(frozen=True)
class _Sound:
    """A generated sound or an audio file, played whole."""

    name: str
    length: Samples
    level_db: float


@dataclass(frozen=True)
class _Breathing:
    """A `breathe` step, with the words its cues are said in."""

    step: Breathe
    words: Words


_Item = _Utterances | Pause | Chime | _Breathing | _HoldItem | _Mark | _Sound | _Side


def _flatten(steps: Sequence[Step], side: str | None, gap: Samples, out: list[_Item], holds: list[Hold],
             section_chimes: bool = False, words: Words = ENGLISH) -> None:
    def fill(text: str) -> str:
        return text.replace(SIDE_FIELD, words.side(side)) if side is not None else text

    for step in steps:
        if isinstance(step, Say):
            out.append(_Utterances(tuple(split_inline(fill(step.text))), gap))
        elif isinstance(step, Hold):
            out.append(_HoldItem(step, tuple(fill(r) for r in step.reminders), len(holds)))
            holds.append(step)
        elif isinstance(step, Sides):
            for name in step.sides:
                out.append(_Side(words.side(name)))
                _flatten(step.steps, name, gap, out, holds, section_chimes, words)
        elif isinstance(step, Section):
            kind = "pose" if step.pose else "section"
            out.append(_Mark(fill(step.title), True, kind))
            if section_chimes and not step.pose:
                out.append(Chime(step.where))
            _flatten(step.steps, side, gap, out, holds, section_chimes, words)
            out.append(_Mark(fill(step.title), False, kind))
        elif isinstance(step, Breathe):
            out.append(_Breathing(step, words.over(dict(step.cues)) if step.cues else words))
        elif isinstance(step, (Pause, Chime)):
            out.append(step)
        else:
            raise TypeError(f"the plan has no place for a {type(step).__name__} step")


def _bumper(bumper: Bumper | None, kind: str, gap: Samples, sound_length: SoundLength | None) -> list[_Item]:
    """An intro or outro: its own chapter, the sound, then its words."""
    if bumper is None:
        return []
    items: list[_Item] = [_Mark(bumper.title, True, kind)]
    if bumper.sound:
        if bumper.is_file:
            if sound_length is None:
                raise ValueError(f"the length of {bumper.sound} is needed to plan the {kind}")
            length = sound_length(bumper.sound)
        else:
            length = GENERATED_LENGTHS[bumper.sound]
        items.append(_Sound(bumper.sound, length, bumper.level_db))
    if bumper.text:
        items.append(_Utterances(tuple(split_inline(bumper.text)), gap))
    items.append(_Mark(bumper.title, False, kind))
    return items


def _breath_cues(item: _Breathing) -> list[tuple[Samples, str]]:
    """(offset within one cycle, text) of each spoken cue in a cycle, in the script's language."""
    step, words = item.step, item.words
    cues: list[tuple[Samples, str]] = []
    offset = 0
    for phase, length in step.pattern.phases():
        if length > 0:
            if step.cue is Cue.WORDS:
                cues.append((offset, words.cue(phase)))
            elif step.cue is Cue.COUNT:
                cues.append((offset, words.first_count(phase)))
                whole_seconds = length // SAMPLE_RATE
                for second in range(1, min(whole_seconds, len(words.numbers) + 1)):
                    cues.append((offset + second * SAMPLE_RATE, words.numbers[second - 1]))
        offset += length
    return cues


def _texts(items: Sequence[_Item]) -> list[str]:
    texts: list[str] = []
    for item in items:
        if isinstance(item, _Utterances):
            texts.extend(p for p in item.parts if isinstance(p, str))
        elif isinstance(item, _HoldItem):
            texts.extend(item.reminders)
        elif isinstance(item, _Breathing):
            texts.extend(text for _, text in _breath_cues(item))
    return list(dict.fromkeys(texts))


# ---------------------------------------------------------------- fitting

@dataclass(frozen=True)
class Elastic:
    nominal: Samples
    low: Samples
    high: Samples


def fit(fixed: Samples, elastic: Sequence[Elastic], target: Samples) -> list[Samples]:
    """Lengths for the elastic parts so that fixed + sum == target exactly.

    Each part scales in proportion to its nominal length, clamped to its bounds;
    what a clamped part cannot take is shared by the others. Raises ValueError
    naming the shortest and longest reachable totals when the target is out of reach.
    """
    shortest = fixed + sum(e.low for e in elastic)
    longest = fixed + sum(e.high for e in elastic)
    if not shortest <= target <= longest:
        raise ValueError(
            f"the script can be between {format_clock(shortest)} and {format_clock(longest)} long, "
            f"not {format_clock(target)}"
        )
    need = target - fixed
    lengths: list[float | None] = [None] * len(elastic)
    while True:
        free = [i for i, v in enumerate(lengths) if v is None]
        settled = sum(v for v in lengths if v is not None)
        weight = sum(elastic[i].nominal for i in free)
        scale = (need - settled) / weight if weight else 0.0
        clamped = False
        for i in free:
            want = elastic[i].nominal * scale
            if want < elastic[i].low or want > elastic[i].high:
                lengths[i] = float(min(max(want, elastic[i].low), elastic[i].high))
                clamped = True
        if not clamped:
            for i in free:
                lengths[i] = elastic[i].nominal * scale
            break
    # Round to whole samples, handing the remainder to the largest fractions.
    floors = [int(v) for v in lengths]  # type: ignore[arg-type]
    remainder = need - sum(floors)
    order = sorted(range(len(floors)), key=lambda i: lengths[i] - floors[i], reverse=True)  # type: ignore[operator]
    for i in order[:remainder]:
        floors[i] += 1
    return floors


def _reminder_room(spoken: Sequence[Samples]) -> Samples:
    """The shortest hold that keeps every reminder apart with quiet around it."""
    return sum(spoken) + (len(spoken) + 1) * REMINDER_MARGIN if spoken else 0


# ---------------------------------------------------------------- the plan


def make_plan(script: Script, measure: Measure, sound_length: SoundLength | None = None) -> Plan:
    """The timeline. `measure` gives spoken lengths; `sound_length` the length of an intro's
    or outro's audio file (only needed when the script has one)."""
    items: list[_Item] = _bumper(script.intro, "intro", script.gap, sound_length)
    holds: list[Hold] = []
    _flatten(script.steps, None, script.gap, items, holds, script.section_chimes, script.words)
    items += _bumper(script.outro, "outro", script.gap, sound_length)
    spoken = measure(_texts(items))
    warnings: list[Problem] = list(script.warnings)

    breath = [i.step.pattern.cycle for i in items if isinstance(i, _Breathing) and i.step.elastic]
    if script.duration is not None:
        items = _fit_breathing(items, spoken, script.duration)
    fixed = 0
    elastic: list[Elastic] = []
    elastic_of: dict[int, int] = {}
    for item in items:
        if isinstance(item, _HoldItem):
            hold = item.hold
            room = _reminder_room([spoken[r] for r in item.reminders])
            if room > hold.length:
                warnings.append(Problem(
                    f"this hold ({format_clock(hold.length)}) is shorter than its reminders need "
                    f"({format_clock(room)}); they will run close together", hold.where, Severity.WARNING))
            part = _elastic(item, spoken) if script.duration is not None else None
            if part is not None:
                elastic_of[item.index] = len(elastic)
                elastic.append(part)
                continue
        fixed += _fixed_length(item, spoken)  # breathing here has the whole cycles `_fit_breathing` gave it

    lengths = [h.length for h in holds]
    if script.duration is not None:
        try:
            fitted = fit(fixed, elastic, script.duration)
        except ValueError as err:
            hint = (" Give holds `min`/`max` so they can stretch, or change `duration`."
                    if not elastic else " Widen the holds' `min`/`max`, or change `duration`.")
            if breath:
                hint += (f" Breathing fits whole cycles ({to_seconds(min(breath)):.1f} s or more each), so a hold "
                         "with `min`/`max` or a different `duration` must take up the rest.")
            raise InvalidInput(Problem(f"cannot fit duration: {err}.{hint}", script.duration_where)) from None
        for index, slot in elastic_of.items():
            lengths[index] = fitted[slot]

    events, chapters, length, bed, spans = _lay_out(items, spoken, lengths, warnings)
    if length > MAX_TRACK:
        raise InvalidInput(Problem(f"the track would be {format_clock(length)} long; the limit is 48 hours",
                                   Location(script.path, 1, 1)))
    return Plan(script, length, tuple(events), tuple(chapters), tuple(warnings), tuple(lengths), bed, tuple(spans))


def _fit_breathing(items: list[_Item], spoken: Mapping[str, Samples], target: Samples) -> list[_Item]:
    """Elastic `breathe` steps (with `min`/`max`) given whole cycles: everything elastic is fitted
    together first, then each breathe step takes the whole number of cycles nearest its share
    (within its bounds), and the holds are fitted to what is left."""
    parts = [_elastic(item, spoken) for item in items]
    if not any(part is not None and isinstance(item, _Breathing) for item, part in zip(items, parts, strict=True)):
        return items
    fixed = sum(_fixed_length(item, spoken) for item, part in zip(items, parts, strict=True) if part is None)
    try:
        shares = iter(fit(fixed, [part for part in parts if part is not None], target))
    except ValueError:
        return items  # the holds' fitting says why, with the breathing as it is written
    fitted: list[_Item] = []
    for item, part in zip(items, parts, strict=True):
        share = next(shares) if part is not None else 0
        if part is not None and isinstance(item, _Breathing):
            step = item.step
            cycles = min(max(round(share / step.pattern.cycle), step.low), step.high)
            item = _Breathing(replace(step, cycles=cycles, low=cycles, high=cycles), item.words)
        fitted.append(item)
    return fitted


def _elastic(item: _Item, spoken: Mapping[str, Samples]) -> Elastic | None:
    """How far fitting may stretch an item: an elastic hold (never below the room its reminders
    need), or an elastic breathe step (lengths of whole cycles); None for a fixed item."""
    if isinstance(item, _HoldItem) and item.hold.elastic:
        hold = item.hold
        room = _reminder_room([spoken[r] for r in item.reminders])
        return Elastic(hold.length, max(hold.min, min(room, hold.max)), hold.max)
    if isinstance(item, _Breathing) and item.step.elastic:
        step = item.step
        cycle = step.pattern.cycle
        return Elastic(step.cycles * cycle, step.low * cycle, step.high * cycle)
    return None


def _fixed_length(item: _Item, spoken: Mapping[str, Samples]) -> Samples:
    if isinstance(item, _Utterances):
        return sum(p if isinstance(p, int) else spoken[p] for p in item.parts) + item.gap
    if isinstance(item, Pause):
        return item.length
    if isinstance(item, Chime):
        return GENERATED_LENGTHS[item.sound]
    if isinstance(item, _Sound):
        return item.length
    if isinstance(item, _Breathing):
        return item.step.cycles * item.step.pattern.cycle
    if isinstance(item, _HoldItem):
        return item.hold.length  # as written (an elastic one is fitted instead)
    if isinstance(item, (_Mark, _Side)):
        return 0
    raise TypeError(f"no length for a {type(item).__name__}")


def _lay_out(items: Sequence[_Item], spoken: Mapping[str, Samples], holds: Sequence[Samples],
             warnings: list[Problem]) -> tuple[list[Event], list[Chapter], Samples, tuple[Samples, Samples], list[Span]]:
    """Events, chapters, the track's length, and where the bed plays."""
    events: list[Event] = []
    spans: list[Span] = []
    groups: list[_Group] = []  # every section, pose, intro and outro, in the order they open
    open_groups: list[_Group] = []
    bed = [0, -1]
    now = 0
    for item in items:
        if isinstance(item, _Utterances):
            for part in item.parts:
                if isinstance(part, str):
                    events.append(Event(now, spoken[part], Kind.SPEECH, part))
                    now += spoken[part]
                else:
                    now += part
            now += item.gap
        elif isinstance(item, Pause):
            spans.append(Span(now, item.length, SpanKind.PAUSE))
            now += item.length
        elif isinstance(item, _Side):
            spans.append(Span(now, 0, SpanKind.SIDE, item.name))
        elif isinstance(item, Chime):
            length = GENERATED_LENGTHS[item.sound]
            events.append(Event(now, length, Kind.CHIME, "" if item.sound == "chime" else item.sound))
            now += length
        elif isinstance(item, _Sound):
            events.append(Event(now, item.length, Kind.SOUND, item.name, item.level_db))
            now += item.length
        elif isinstance(item, _Breathing):
            events.extend(_breath_events(item, now, spoken, warnings))
            step = item.step
            spans.append(Span(now, step.cycles * step.pattern.cycle, SpanKind.BREATHE,
                              f"{step.cycles} x {step.pattern.name}", pattern=step.pattern))
            now += step.cycles * step.pattern.cycle
        elif isinstance(item, _HoldItem):
            length = holds[item.index]
            events.extend(_reminder_events(item, now, length, spoken, warnings))
            hold = item.hold
            spans.append(Span(now, length, SpanKind.HOLD, "", hold.length, hold.min, hold.max))
            now += length
        elif isinstance(item, _Mark):
            if item.opening:
                group = _Group(item.title, item.kind, now, open_groups[-1] if open_groups else None)
                groups.append(group)
                open_groups.append(group)
                if item.kind == "outro":
                    bed[1] = now
            else:
                open_groups.pop().end = now
                if item.kind == "intro":
                    bed[0] = now
    bed[1] = now if bed[1] < 0 else bed[1]
    return events, _chapters(groups, now), now, (bed[0], bed[1]), spans


@dataclass(eq=False)
class _Group:
    title: str
    kind: str
    start: Samples
    parent: _Group | None
    end: Samples = 0


def _chapters(groups: Sequence[_Group], length: Samples) -> list[Chapter]:
    """Chapters that follow one another without overlap: one wherever a section or pose
    begins, and where a section carries on after a pose. A section's only pose is not a chapter
    of its own (the section is); a pose that opens a section with several is named after both
    ("Hips: Butterfly"). Stretches outside every section have no chapter."""
    groups = [g for g in groups if g.end > g.start]
    poses: dict[int, int] = {}
    for group in groups:
        if group.kind == "pose" and group.parent is not None:
            poses[id(group.parent)] = poses.get(id(group.parent), 0) + 1
    shown = [g for g in groups if not (g.kind == "pose" and g.parent is not None and poses[id(g.parent)] == 1)]
    bounds = sorted({0, length, *(g.start for g in shown), *(g.end for g in shown)})
    chapters: list[Chapter] = []
    for start, stop in zip(bounds, bounds[1:], strict=False):
        inside = [g for g in shown if g.start <= start and stop <= g.end]
        if not inside:
            continue
        fresh = [g.title for g in inside if g.start == start]
        title = ": ".join(dict.fromkeys(fresh)) if fresh else inside[-1].title
        last = chapters[-1] if chapters else None
        if last and last.end == start and (last.title == title or stop - start < MIN_CHAPTER):
            chapters[-1] = Chapter(last.title, last.start, stop)
        else:
            chapters.append(Chapter(title, start, stop))
    return chapters


def _breath_events(item: _Breathing, start: Samples, spoken: Mapping[str, Samples],
                   warnings: list[Problem]) -> list[Event]:
    """Every cue starts exactly on its phase: the grid comes from integer sample counts."""
    step = item.step
    cycle = step.pattern.cycle
    events: list[Event] = []
    spoken_cycles = range(0)
    if step.cue in (Cue.WORDS, Cue.COUNT):
        cues = _breath_cues(item)
        # A cue may run until the next cue (or the cycle's end), never past it.
        limits = [nxt for nxt, _ in cues[1:]] + [cycle]
        for (offset, text), limit in zip(cues, limits, strict=True):
            if spoken[text] > limit - offset:
                warnings.append(Problem(
                    f"the cue '{text}' takes {to_seconds(spoken[text]):.2f} s, longer than its "
                    f"{to_seconds(limit - offset):.2f} s slot; slow the pattern or use cue: tone",
                    step.where, Severity.WARNING))
        spoken_cycles = range(min(step.cycles, step.fade) if step.fade else step.cycles)
        for k in spoken_cycles:
            base = start + k * cycle
            gain = -FADE_STEP_DB * k if step.fade else 0.0
            events.extend(Event(base + offset, spoken[text], Kind.SPEECH, text, gain) for offset, text in cues)
    if step.cue is Cue.TONE or step.fade:
        # tones mark every phase (holds with a tone of their own); after a fade they carry on
        # where the words stopped
        offset = 0
        for phase, length in step.pattern.phases():
            if length > 0:
                for k in range(len(spoken_cycles), step.cycles):
                    events.append(Event(start + k * cycle + offset, min(TONE_LENGTH, length), Kind.TONE, phase))
            offset += length
    events.sort(key=lambda e: e.start)
    return events


def _reminder_events(item: _HoldItem, start: Samples, length: Samples, spoken: Mapping[str, Samples],
                     warnings: list[Problem]) -> list[Event]:
    """Reminders centred on evenly spaced points through the hold, never overlapping."""
    texts = item.reminders
    if not texts:
        return []
    total = sum(spoken[t] for t in texts)
    if total > length:
        raise InvalidInput(Problem(
            f"the reminders take {format_clock(total)}, longer than the hold's {format_clock(length)}",
            item.hold.where))
    events: list[Event] = []
    earliest = start
    for index, text in enumerate(texts):
        centre = start + length * (index + 1) // (len(texts) + 1)
        begin = max(earliest, centre - spoken[text] // 2)
        remaining_after = sum(spoken[t] for t in texts[index + 1:])
        begin = min(begin, start + length - spoken[text] - remaining_after)
        events.append(Event(begin, spoken[text], Kind.SPEECH, text))
        earliest = begin + spoken[text]
    return events
