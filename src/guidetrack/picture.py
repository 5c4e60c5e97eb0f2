"""A picture of a session, drawn from its plan (no audio needed): one SVG with a time axis, the
chapters as bands, every utterance as a block (its words on hover), holds with their fitted
length and their bounds, pauses, breathing on its grid, chimes and tones as marks, and the bed's
level with its fades and dips under the voice.

Every mark carries `data-start` (seconds), and the root `<svg>` the geometry of its time axis
(`data-x0`, `data-width`, `data-length`), so a page can turn a click into a time.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from .plan import Kind, Plan, SpanKind
from .units import SAMPLE_RATE, Samples, format_clock

WIDTH = 1200  # px
LEFT, RIGHT = 16, 16  # margins
AXIS = WIDTH - LEFT - RIGHT
ROWS = {"chapters": 8, "speech": 38, "holds": 60, "breath": 82, "marks": 104, "bed": 124}  # top of each row
HEIGHT = 196
TICKS = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)  # seconds between ticks, the first that fits
MIN_GAP = 1.0  # px: speech blocks closer than this are drawn as one (an 8-hour track stays legible)
COLOURS = {"chapter": ("#e9e4f2", "#dcd3ea"), "speech": "#3d5a80", "hold": "#98c1d9", "pause": "#e0e0e0",
           "breath": "#ee6c4d", "chime": "#c08a2e", "tone": "#ee6c4d", "sound": "#6a994e", "bed": "#5c677d"}


def _x(samples: Samples, length: Samples) -> float:
    return LEFT + AXIS * samples / max(length, 1)


def _secs(samples: Samples) -> str:
    return f"{samples / SAMPLE_RATE:.3f}".rstrip("0").rstrip(".")


def session_svg(plan: Plan) -> str:
    """The plan as an SVG document."""
    length = plan.length
    x = lambda s: _x(s, length)  # noqa: E731 - the one scale everything is drawn at
    out: list[str] = []
    add = out.append
    title = escape(plan.script.title)
    add(f'<svg xmlns="http://www.w3.org/2000/svg" class="session" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" data-x0="{LEFT}" data-width="{AXIS}" data-length="{_secs(length)}" '
        f'role="img" aria-label="{title}, {format_clock(length)}">')
    add(f"<title>{title} ({format_clock(length)})</title>")
    add('<style>text{font:11px system-ui,sans-serif;fill:#2b2d42}.label{fill:#555}'
        ' [data-start]{cursor:pointer}</style>')

    # chapters: bands with their titles
    fills = COLOURS["chapter"]
    for index, chapter in enumerate(plan.chapters):
        a, b = x(chapter.start), x(chapter.end)
        name = escape(chapter.title)
        add(f'<g class="chapter" data-start="{_secs(chapter.start)}"><title>{name} '
            f'({format_clock(chapter.start)})</title><rect x="{a:.2f}" y="{ROWS["chapters"]}" '
            f'width="{max(b - a, 0.5):.2f}" height="24" fill="{fills[index % 2]}"/>'
            f'<text x="{a + 3:.2f}" y="{ROWS["chapters"] + 16}">'
            f'{_fit(chapter.title, b - a)}</text></g>')

    # speech: a block an utterance, neighbours closer than a pixel drawn as one
    blocks: list[list[tuple[Samples, Samples, str]]] = []
    for event in plan.speech():
        start, end = event.start, event.start + event.length
        if blocks and x(start) - x(blocks[-1][-1][1]) < MIN_GAP:
            blocks[-1].append((start, end, event.text))
        else:
            blocks.append([(start, end, event.text)])
    for group in blocks:
        a, b = x(group[0][0]), x(group[-1][1])
        words = escape(group[0][2] if len(group) == 1 else f"{group[0][2]} (and {len(group) - 1} more)")
        add(f'<rect class="speech" data-start="{_secs(group[0][0])}" x="{a:.2f}" y="{ROWS["speech"]}" '
            f'width="{max(b - a, 0.6):.2f}" height="16" rx="2" fill="{COLOURS["speech"]}">'
            f'<title>{format_clock(group[0][0])} {words}</title></rect>')

    # holds (fitted, with their bounds), pauses and breathing on its grid
    for span in plan.spans:
        a, b = x(span.start), x(span.start + span.length)
        if span.kind is SpanKind.HOLD:
            hover = f"hold {format_clock(span.length)}"
            if span.length != span.nominal:
                hover += f" (written {format_clock(span.nominal)})"
            add(f'<g class="hold" data-start="{_secs(span.start)}"><title>{hover}</title>'
                f'<rect x="{a:.2f}" y="{ROWS["holds"]}" width="{max(b - a, 0.6):.2f}" height="14" '
                f'fill="{COLOURS["hold"]}"/>')
            if span.low != span.high:  # how far fitting could have moved it
                lo, hi = x(span.start + span.low), min(x(span.start + span.high), x(length))
                y = ROWS["holds"] + 7
                add(f'<line class="bounds" x1="{lo:.2f}" y1="{y}" x2="{hi:.2f}" y2="{y}" stroke="#2b2d42" '
                    f'stroke-width="1" stroke-dasharray="2 2"/>')
            add("</g>")
        elif span.kind is SpanKind.PAUSE:
            add(f'<rect class="pause" data-start="{_secs(span.start)}" x="{a:.2f}" y="{ROWS["holds"] + 3}" '
                f'width="{max(b - a, 0.6):.2f}" height="8" fill="{COLOURS["pause"]}">'
                f'<title>pause {format_clock(span.length)}</title></rect>')
        elif span.kind is SpanKind.BREATHE:
            add(f'<g class="breathe" data-start="{_secs(span.start)}"><title>breathe {escape(span.label)} '
                f'({format_clock(span.length)})</title><rect x="{a:.2f}" y="{ROWS["breath"]}" '
                f'width="{max(b - a, 0.6):.2f}" height="14" fill="{COLOURS["breath"]}" fill-opacity="0.18"/>')
            cycles = int(span.label.split(" ", 1)[0]) if span.label[:1].isdigit() else 0
            if cycles and (b - a) / cycles >= 3:  # the grid, where a cycle is wide enough to see
                for k in range(cycles + 1):
                    gx = a + (b - a) * k / cycles
                    add(f'<line x1="{gx:.2f}" y1="{ROWS["breath"]}" x2="{gx:.2f}" y2="{ROWS["breath"] + 14}" '
                        f'stroke="{COLOURS["breath"]}" stroke-width="1"/>')
            add("</g>")

    # chimes, sounds and tones: marks (tones closer than 2 px apart are one mark: the grid shows them)
    last_tone = -10.0
    for event in plan.events:
        if event.kind is Kind.SPEECH:
            continue
        a = x(event.start)
        if event.kind is Kind.TONE:
            if a - last_tone < 2:
                continue
            last_tone = a
        tall = 4 if event.kind is Kind.TONE else 14
        name = {Kind.CHIME: event.text or "chime", Kind.TONE: f"tone: {event.text}",
                Kind.SOUND: event.text.rsplit("/", 1)[-1]}[event.kind]
        add(f'<line class="{event.kind.value}" data-start="{_secs(event.start)}" x1="{a:.2f}" '
            f'y1="{ROWS["marks"] + 14 - tall}" x2="{a:.2f}" y2="{ROWS["marks"] + 14}" '
            f'stroke="{COLOURS[event.kind.value]}" stroke-width="{1 if event.kind is Kind.TONE else 2}">'
            f'<title>{format_clock(event.start)} {escape(name)}</title></line>')

    _bed(plan, x, add)
    _axis(length, x, add)
    add("</svg>")
    return "\n".join(out) + "\n"


def _bed(plan: Plan, x: Callable[[Samples], float], add: Callable[[str], None]) -> None:
    """The bed's level as a line: up over its fade-in, down over its fade-out, dipping under speech."""
    background = plan.script.background
    if background is None:
        return
    start, end = plan.bed
    top, floor = ROWS["bed"] + 4, ROWS["bed"] + 40  # full level, and silence
    duck = background.duck
    dip = min(duck.depth_db / 24, 1.0) * (floor - top) if duck else 0.0
    points: list[tuple[Samples, float]] = [(start, floor), (start + background.fade_in, top)]
    if duck:
        spans: list[tuple[Samples, Samples]] = []
        for event in plan.speech():
            if event.gain_db:
                continue
            a, b = event.start - duck.attack, event.start + event.length + duck.release
            if spans and a <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(b, spans[-1][1]))
            else:
                spans.append((a, b))
        for a, b in spans:
            a, b = max(a, start + background.fade_in), min(b, end - background.fade_out)
            if b > a:
                points += [(a, top), (a + duck.attack, top + dip), (max(b - duck.release, a + duck.attack), top + dip),
                           (b, top)]
    points += [(end - background.fade_out, top), (end, floor)]
    path = " ".join(f"{x(s):.2f},{y:.1f}" for s, y in points)
    name = escape(background.sound.rsplit("/", 1)[-1])
    add(f'<g class="bed"><title>bed: {name}</title><polyline points="{path}" fill="none" '
        f'stroke="{COLOURS["bed"]}" stroke-width="1.2"/></g>')


def _axis(length: Samples, x: Callable[[Samples], float], add: Callable[[str], None]) -> None:
    seconds = length / SAMPLE_RATE
    step = next((t for t in TICKS if seconds / t <= 12), TICKS[-1])
    y = HEIGHT - 14
    add(f'<line x1="{LEFT}" y1="{y}" x2="{LEFT + AXIS}" y2="{y}" stroke="#999"/>')
    t = 0
    while t <= seconds + 1e-6:
        tx = x(round(t * SAMPLE_RATE))
        add(f'<line x1="{tx:.2f}" y1="{y}" x2="{tx:.2f}" y2="{y + 4}" stroke="#999"/>'
            f'<text class="label" x="{tx:.2f}" y="{y + 13}" text-anchor="middle">{format_clock(round(t * SAMPLE_RATE))}</text>')
        t += step


def _fit(text: str, width: float) -> str:
    """A title cut to the room its band has (about 6 px a character)."""
    room = int(width / 6.2)
    if room < 2:
        return ""
    return escape(text if len(text) <= room else text[: max(room - 1, 1)] + "…")
