"""Issue 15, the picture of a session: every part of the plan drawn at its time."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from guidetrack.picture import AXIS, LEFT, session_svg
from guidetrack.plan import Kind, SpanKind
from guidetrack.render import plan_script
from guidetrack.script import load

SVG = "{http://www.w3.org/2000/svg}"
SCRIPT = """guidetrack: 1
title: Picture
voice: calm
duration: 2m
background: {sound: pink-noise, fade_in: 4s, fade_out: 6s}
steps:
  - chime
  - section: Arrive
    steps:
      - say: Lie down and rest.
      - pause: 2s
      - hold: {for: 20s, min: 10s, max: 90s, reminders: [Soften the jaw.]}
  - section: Breathe
    steps:
      - breathe: {pattern: box, cycles: 3, cue: tone}
"""


def _plan(tmp_path):
    script = tmp_path / "s.yaml"
    script.write_text(SCRIPT)
    return plan_script(load(script), tmp_path / "cache")[0]


def test_every_event_span_and_chapter_is_drawn_at_its_time(tmp_path):
    plan = _plan(tmp_path)
    root = ET.fromstring(session_svg(plan))
    assert float(root.get("data-length")) == plan.length / 44100

    def x(samples):
        return LEFT + AXIS * samples / plan.length

    speech = root.findall(f".//{SVG}rect[@class='speech']")
    assert [round(float(r.get("x")), 2) for r in speech] == [round(x(e.start), 2) for e in plan.speech()]
    assert [r.find(f"{SVG}title").text.split(" ", 1)[1] for r in speech] == [e.text for e in plan.speech()]
    titles = [g.find(f"{SVG}title").text for g in root.findall(f".//{SVG}g[@class='chapter']")]
    assert [t.rsplit(" (", 1)[0] for t in titles] == [c.title for c in plan.chapters]
    hold = next(s for s in plan.spans if s.kind is SpanKind.HOLD)
    drawn = root.find(f".//{SVG}g[@class='hold']/{SVG}rect")
    assert abs(float(drawn.get("x")) - x(hold.start)) < 0.01 and abs(float(drawn.get("width")) - (x(hold.length) - LEFT)) < 0.01
    assert root.find(f".//{SVG}g[@class='hold']/{SVG}line[@class='bounds']") is not None  # elastic: its bounds
    tones = root.findall(f".//{SVG}line[@class='tone']")
    assert [round(float(t.get("x1")), 2) for t in tones] == \
        [round(x(e.start), 2) for e in plan.events if e.kind is Kind.TONE]
    assert len(root.findall(f".//{SVG}line[@class='chime']")) == 1
    assert root.find(f".//{SVG}g[@class='bed']/{SVG}polyline") is not None


def test_an_eight_hour_session_stays_small_and_legible(tmp_path):
    script = tmp_path / "s.yaml"
    script.write_text("guidetrack: 1\ntitle: Night\nvoice: calm\nduration: 8h\nsteps:\n  - say: Rest now.\n"
                      "  - breathe: {pattern: relax, for: 2h, cue: tone}\n  - hold: {for: 5h, min: 1h, max: 7h}\n")
    plan = plan_script(load(script), tmp_path / "cache")[0]
    picture = session_svg(plan)
    assert len([e for e in plan.events if e.kind is Kind.TONE]) == 1440
    assert len(picture) < 60_000  # tones closer than 2 px are one mark
    assert "8:00:00" in picture  # the axis reads in hours


def test_the_breath_phases_beside_a_track_are_the_plans(tmp_path):
    import json

    from guidetrack.sidecars import breath_json

    plan = _plan(tmp_path)
    phases = json.loads(breath_json(plan))["phases"]
    breathe = next(s for s in plan.spans if s.kind is SpanKind.BREATHE)
    assert [p[2] for p in phases] == ["in", "hold", "out", "rest"] * 3  # box, three cycles
    assert phases[0][0] == round(breathe.start / 44100, 3) and all(p[1] == 4.0 for p in phases)
    tones = [e.start / 44100 for e in plan.events if e.kind is Kind.TONE]
    assert [p[0] for p in phases] == [round(t, 3) for t in tones]  # on the same grid as the tones
