"""The plan's pure logic, with a fake measure: spoken length proportional to characters."""

from pathlib import Path

import pytest

from guidetrack.errors import InvalidInput
from guidetrack.plan import CHIME_LENGTH, Elastic, fit, make_plan
from guidetrack.script import BREATH_PRESETS, load
from guidetrack.units import SAMPLE_RATE, to_samples

PER_CHAR = SAMPLE_RATE // 20  # 50 ms a character


def measure(texts):
    return {t: len(t) * PER_CHAR for t in texts}


def plan_of(tmp_path: Path, body: str, **kwargs):
    path = tmp_path / "s.yaml"
    path.write_text("guidetrack: 1\ntitle: T\n" + body)
    return make_plan(load(path), kwargs.get("measure", measure))


def speech(plan):
    return [(e.start, e.text) for e in plan.speech()]


def test_breath_cues_start_exactly_on_each_phase(tmp_path):
    plan = plan_of(tmp_path, "steps:\n  - breathe: {pattern: box, cycles: 50, cue: words}\n")
    box = BREATH_PRESETS["box"]
    starts = [s for s, _ in speech(plan)]
    phase = to_samples(4)
    assert starts == [k * phase for k in range(200)]
    assert plan.length == 50 * box.cycle


def test_cue_length_never_moves_the_grid(tmp_path):
    """The spoken length is taken from the phase's silence, not added to it."""
    slow = plan_of(tmp_path, "steps:\n  - breathe: {pattern: relax, cycles: 3}\n",
                   measure=lambda ts: {t: 3 * SAMPLE_RATE for t in ts})
    fast = plan_of(tmp_path, "steps:\n  - breathe: {pattern: relax, cycles: 3}\n",
                   measure=lambda ts: {t: SAMPLE_RATE // 4 for t in ts})
    assert [s for s, _ in speech(slow)] == [s for s, _ in speech(fast)]
    assert slow.length == fast.length == 3 * to_samples(10)


def test_no_drift_over_an_hour_of_coherent_breathing(tmp_path):
    plan = plan_of(tmp_path, "steps:\n  - breathe: {pattern: coherent, for: 1h, cue: tone}\n")
    tones = [e for e in plan.events if e.kind == "tone"]
    cycle = BREATH_PRESETS["coherent"].cycle
    assert len(tones) == 2 * (to_samples(3600) // cycle)
    last_in = [e for e in tones if e.text == "in"][-1]
    # the last inhale starts exactly where the grid says, to the sample
    assert last_in.start == (len(tones) // 2 - 1) * cycle
    assert abs(cycle / SAMPLE_RATE - 60 / 5.5) < 1e-4


def test_breathe_for_takes_whole_cycles(tmp_path):
    plan = plan_of(tmp_path, "steps:\n  - breathe: {pattern: relax, for: 35s, cue: none}\n")
    assert plan.length == 3 * to_samples(10)
    assert plan.events == ()


def test_count_cue_speaks_each_second(tmp_path):
    plan = plan_of(tmp_path, "steps:\n  - breathe: {pattern: {in: 4s, out: 4s}, cycles: 1, cue: count}\n")
    assert speech(plan) == [(0, "In"), (SAMPLE_RATE, "two"), (2 * SAMPLE_RATE, "three"), (3 * SAMPLE_RATE, "four"),
                            (4 * SAMPLE_RATE, "Out"), (5 * SAMPLE_RATE, "two"), (6 * SAMPLE_RATE, "three"),
                            (7 * SAMPLE_RATE, "four")]


def test_a_cue_longer_than_its_phase_warns(tmp_path):
    plan = plan_of(tmp_path, "steps:\n  - breathe: {pattern: {in: 0.3s, out: 0.3s}, cycles: 2}\n")
    assert any("longer than its" in w.message and w.severity == "warning" for w in plan.warnings)


def test_inline_pauses_and_gap(tmp_path):
    plan = plan_of(tmp_path, "gap: 0.5s\nsteps:\n  - say: Ab. [2s] Cd.\n  - say: Ef.\n")
    first = 3 * PER_CHAR
    assert speech(plan) == [(0, "Ab."), (first + 2 * SAMPLE_RATE, "Cd."),
                            (2 * first + 2 * SAMPLE_RATE + SAMPLE_RATE // 2, "Ef.")]
    assert plan.length == 3 * first + 2 * SAMPLE_RATE + 2 * (SAMPLE_RATE // 2)


def test_sides_repeat_with_the_side_name(tmp_path):
    plan = plan_of(tmp_path, "steps:\n  - sides: [right, left]\n    steps:\n"
                             "      - say: Lift the {side} leg.\n      - hold: 2s\n")
    assert [t for _, t in speech(plan)] == ["Lift the right leg.", "Lift the left leg."]
    step = len("Lift the right leg.") * PER_CHAR + to_samples(0.8) + 2 * SAMPLE_RATE
    assert speech(plan)[1][0] == step


def test_sections_become_chapters(tmp_path):
    plan = plan_of(tmp_path, "steps:\n  - chime\n  - section: One\n    steps:\n      - pause: 2s\n"
                             "  - section: Two\n    steps:\n      - pause: 3s\n")
    assert [(c.title, c.start, c.end) for c in plan.chapters] == [
        ("One", CHIME_LENGTH, CHIME_LENGTH + 2 * SAMPLE_RATE),
        ("Two", CHIME_LENGTH + 2 * SAMPLE_RATE, CHIME_LENGTH + 5 * SAMPLE_RATE)]


def test_reminders_spread_evenly_inside_the_hold(tmp_path):
    plan = plan_of(tmp_path, "steps:\n  - hold: {for: 60s, reminders: [Aaaa., Bbbb., Cccc.]}\n")
    starts = [s for s, _ in speech(plan)]
    length = 5 * PER_CHAR
    centres = [s + length // 2 for s in starts]
    assert [round(c / SAMPLE_RATE) for c in centres] == [15, 30, 45]
    assert plan.length == to_samples(60)


# ---------------------------------------------------------------- fitting


def test_fit_is_exact_and_proportional():
    lengths = fit(1000, [Elastic(100, 10, 1000), Elastic(300, 10, 1000)], 1800)
    assert sum(lengths) == 800
    assert lengths == [200, 600]


def test_fit_clamps_and_shares_the_rest():
    lengths = fit(0, [Elastic(100, 10, 150), Elastic(100, 10, 1000)], 600)
    assert lengths == [150, 450]


def test_fit_shrinks_to_lower_bounds():
    lengths = fit(0, [Elastic(100, 90, 100), Elastic(100, 10, 100)], 110)
    assert lengths == [90, 20]


def test_fit_rounds_to_exact_samples():
    lengths = fit(7, [Elastic(3, 1, 10)] * 3, 20)
    assert sum(lengths) == 13


def test_fit_impossible_names_the_bounds():
    with pytest.raises(ValueError, match=r"between 0:02 and 0:05"):
        fit(SAMPLE_RATE, [Elastic(2 * SAMPLE_RATE, SAMPLE_RATE, 4 * SAMPLE_RATE)], 10 * SAMPLE_RATE)


def test_duration_fits_the_whole_track(tmp_path):
    plan = plan_of(tmp_path, "duration: 2m\nsteps:\n  - say: Rest.\n  - hold: {for: 30s, min: 10s, max: 5m}\n"
                             "  - hold: {for: 10s, min: 5s, max: 5m}\n  - chime\n")
    assert plan.length == to_samples(120)
    first, second = plan.holds
    assert abs(first / second - 3.0) < 1e-4


def test_impossible_duration_is_invalid_input(tmp_path):
    with pytest.raises(InvalidInput) as caught:
        plan_of(tmp_path, "duration: 10m\nsteps:\n  - hold: {for: 1m, min: 30s, max: 2m}\n")
    message = str(caught.value)
    assert "s.yaml:3:" in message and "0:30 and 2:00" in message


def test_holds_without_bounds_do_not_stretch(tmp_path):
    with pytest.raises(InvalidInput, match="Give holds `min`/`max`"):
        plan_of(tmp_path, "duration: 2m\nsteps:\n  - hold: 1m\n")


def test_fading_cues_get_softer_then_leave_tones_on_the_same_grid(tmp_path):
    plan = plan_of(tmp_path, "steps:\n  - breathe: {pattern: relax, cycles: 5, cue: words, fade: 2}\n")
    cycle = BREATH_PRESETS["relax"].cycle
    spoken = [(e.start, e.text, e.gain_db) for e in plan.speech()]
    assert spoken == [(0, "Breathe in", 0.0), (to_samples(4), "And out", 0.0),
                      (cycle, "Breathe in", -3.0), (cycle + to_samples(4), "And out", -3.0)]
    tones = [(e.start, e.text) for e in plan.events if e.kind == "tone"]
    assert tones == [(k * cycle + offset, phase) for k in (2, 3, 4)
                     for offset, phase in ((0, "in"), (to_samples(4), "out"))]
    assert plan.length == 5 * cycle


def test_new_presets(tmp_path):
    for name, seconds in (("resonant", 10), ("triangle", 12), ("calming", 9)):
        plan = plan_of(tmp_path, f"steps:\n  - breathe: {{pattern: {name}, cycles: 2, cue: none}}\n")
        assert plan.length == 2 * to_samples(seconds)


def test_chimes_at_every_section(tmp_path):
    plan = plan_of(tmp_path, "chimes: sections\nsteps:\n  - section: A\n    steps: [{pause: 2s}]\n"
                             "  - section: B\n    steps: [{pause: 3s}]\n")
    chimes = [e.start for e in plan.events if e.kind == "chime"]
    assert chimes == [0, CHIME_LENGTH + to_samples(2)]
    assert [(c.title, c.start) for c in plan.chapters] == [("A", 0), ("B", CHIME_LENGTH + to_samples(2))]
    assert plan.length == 2 * CHIME_LENGTH + to_samples(5)


# ---------------------------------------------------------------- poses, intro and outro

POSE = "guidetrack: 1\nblock: {name}\nsteps:\n  - pause: {seconds}s\n"


def test_poses_are_chapters_inside_sections(tmp_path):
    for name, seconds in (("Cat", 4), ("Cow", 5), ("Twist", 6), ("Rest", 7)):
        (tmp_path / f"{name.lower()}.yaml").write_text(POSE.format(name=name, seconds=seconds))
    plan = plan_of(tmp_path, (
        "steps:\n"
        "  - section: Spine\n    steps:\n"
        "      - include: cat.yaml\n      - include: cow.yaml\n      - pause: 3s\n"
        "  - section: Twisting\n    steps:\n      - pause: 1s\n      - include: twist.yaml\n"
        "  - include: rest.yaml\n"))
    s = SAMPLE_RATE
    assert [(c.title, c.start, c.end) for c in plan.chapters] == [
        ("Spine: Cat", 0, 4 * s),  # a pose opening a section with several names both
        ("Cow", 4 * s, 9 * s),
        ("Spine", 9 * s, 12 * s),  # the section carries on after its poses
        ("Twisting", 12 * s, 19 * s),  # a section's only pose is not a chapter of its own
        ("Rest", 19 * s, 26 * s),  # a pose outside any section is one
    ]


def test_a_pose_shorter_than_a_second_joins_the_chapter_before(tmp_path):
    (tmp_path / "nod.yaml").write_text(POSE.format(name="Nod", seconds=0.5))
    (tmp_path / "bow.yaml").write_text(POSE.format(name="Bow", seconds=2))
    plan = plan_of(tmp_path, "steps:\n  - section: A\n    steps:\n      - include: bow.yaml\n"
                             "      - include: nod.yaml\n")
    assert [(c.title, c.end) for c in plan.chapters] == [("A: Bow", to_samples(2.5))]


def test_intro_and_outro_open_and_close_the_track(tmp_path):
    plan = plan_of(tmp_path, (
        "duration: 60s\nintro: {sound: bowl, say: Welcome.}\noutro: chime\n"
        "background: {sound: pink-noise}\n"
        "steps:\n  - section: Rest\n    steps:\n      - hold: {for: 30s, min: 10s, max: 50s}\n"))
    bowl, chime = to_samples(12), CHIME_LENGTH
    welcome = len("Welcome.") * PER_CHAR
    intro_end = bowl + welcome + to_samples(0.8)
    assert plan.length == to_samples(60)  # the duration includes intro and outro
    assert [(e.kind, e.start, e.text) for e in plan.events] == [
        ("sound", 0, "bowl"), ("speech", bowl, "Welcome."), ("sound", plan.length - chime, "chime")]
    assert [(c.title, c.start, c.end) for c in plan.chapters] == [
        ("Intro", 0, intro_end), ("Rest", intro_end, plan.length - chime), ("Outro", plan.length - chime, plan.length)]
    assert plan.bed == (intro_end, plan.length - chime)  # the background plays between them
    assert plan.to_json()["events"][0] == {"start": 0.0, "duration": 12.0, "kind": "sound", "sound": "bowl",
                                           "gain_db": -3.0}


def test_an_intro_file_is_as_long_as_the_file(tmp_path):
    (tmp_path / "theme.wav").write_bytes(b"")  # only its name is needed: the length is measured outside
    path = tmp_path / "s.yaml"
    path.write_text("guidetrack: 1\ntitle: T\nintro: {sound: theme.wav, title: Theme, level: -6}\n"
                    "steps:\n  - pause: 2s\n")
    plan = make_plan(load(path), measure, lambda file: to_samples(7.5) if file.endswith("theme.wav") else 0)
    assert [(e.kind, e.length, e.gain_db) for e in plan.events] == [("sound", to_samples(7.5), -6.0)]
    assert plan.chapters[0].title == "Theme" and plan.length == to_samples(9.5)


def test_a_chime_can_be_a_singing_bowl(tmp_path):
    plan = plan_of(tmp_path, "steps:\n  - chime: bowl\n  - chime\n  - chime: {}\n")
    assert [(e.start, e.length, e.text) for e in plan.events] == [
        (0, to_samples(12), "bowl"), (to_samples(12), CHIME_LENGTH, ""), (to_samples(18), CHIME_LENGTH, "")]
    assert plan.to_json()["events"][0]["sound"] == "bowl"
