"""Steps: each list item of a script or block checked and built, includes expanded."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..errors import Location, Problem
from .checker import Checker, Context, KeyPath, check_cues, describe_value, suggest
from .model import (
    BREATH_PRESETS,
    INLINE_PAUSE,
    MAX_CYCLES,
    Breathe,
    BreathPattern,
    Chime,
    Cue,
    Hold,
    Pause,
    Say,
    Section,
    Sides,
    Step,
    cue_pairs,
)
from .params import merge_params, substitute
from .schema import BARE_STEPS, BLOCK_SCHEMA, STEP_SCHEMAS
from .yamltree import Tree

MAX_INCLUDE_DEPTH = 16
MAX_STEPS = 20_000  # steps after includes are expanded: stops include bombs


def _breathe_shorthand(value: Any, at: KeyPath, check: Checker) -> bool:
    """Whether a `breathe` value is of a shape to check; if not, says what was meant."""
    if isinstance(value, str) and value in BREATH_PRESETS:
        check.error(at, f"`breathe: {value}` needs a length: write breathe: {{pattern: {value}, cycles: 6}} "
                    f"or {{pattern: {value}, for: 2m}}")
        return False
    pattern = value.get("pattern") if isinstance(value, dict) else None
    if isinstance(pattern, (int, float)) and not isinstance(pattern, bool):
        digits = str(pattern).replace(".", "")
        named = [n for n in BREATH_PRESETS if n.replace("-", "") == digits]
        hint = f": did you mean '{named[0]}'? (quote it, or keep the dashes)" if named else \
            f"; presets: {', '.join(BREATH_PRESETS)}, or {{in: 4s, out: 6s}}"
        check.error(at + ("pattern",), f"{pattern} is not a breath pattern{hint}")
        return False
    return True


def _inner_keys(kind: str) -> set[str]:
    """The keys a step's value may have (`for`, `min`... under `hold:`)."""
    schema = STEP_SCHEMAS[kind]["properties"][kind]
    found: set[str] = set()
    for branch in [schema, *schema.get("anyOf", [])]:
        if isinstance(branch, dict):
            found.update(branch.get("properties", {}))
    return found


def is_block(data: Any) -> bool:
    return isinstance(data, dict) and "block" in data


def read_steps(items: list[Any], keys: KeyPath, check: Checker, sides: bool) -> tuple[Step, ...]:
    steps: list[Step] = []
    for index, item in enumerate(items):
        check.context.steps += 1
        if check.context.steps > MAX_STEPS:
            check.error(keys + (index,), f"the script has more than {MAX_STEPS} steps once its includes are "
                        "expanded; an include is probably repeated far more often than meant")
            break
        if isinstance(item, dict) and "include" in item:
            steps.extend(_include(item, keys + (index,), check, sides))
            continue
        step = _step(item, keys + (index,), check, sides)
        if step is not None:
            steps.append(step)
    return tuple(steps)


def _include(item: dict[str, Any], keys: KeyPath, check: Checker, sides: bool) -> tuple[Step, ...]:
    if not check.schema(item, STEP_SCHEMAS["include"], keys):
        return ()
    name = item["include"]
    at = keys + ("include",)
    shown = Path(os.path.normpath(check.tree.path.parent / name))
    real = shown.resolve()
    root = check.context.root
    if not real.is_relative_to(root):
        check.error(at, f"'{name}' is outside the library folder {root}; includes must stay inside it "
                        "(name the library with --library FOLDER when the script is in a folder of it)")
        return ()
    if real in check.chain:
        cycle = " -> ".join(_shown(p, root) for p in (*check.chain[check.chain.index(real):], real))
        check.error(at, f"include cycle: {cycle}; a block cannot include itself, directly or through others")
        return ()
    if len(check.chain) > MAX_INCLUDE_DEPTH:
        check.error(at, f"includes are nested more than {MAX_INCLUDE_DEPTH} deep")
        return ()
    if not real.is_file():
        check.error(at, f"no block file '{name}' (looked for {shown}; paths are relative to this file)")
        return ()
    origin = f" (included from {check.tree.where(at)})" + check.origin
    found = check.read(shown, origin)
    if found is None:
        return ()
    data, tree = found
    if not is_block(data):
        check.error(at, f"'{name}' is not a block: a block file has `guidetrack: 1`, `block: NAME` and `steps`")
        return ()
    child = check.child(tree, real, origin)
    if not child.schema(data, BLOCK_SCHEMA, ()):
        return ()
    params = merge_params(data.get("params"), item.get("with"), keys + ("with",), check, f"the block '{name}'", at)
    if params is None:
        return ()
    check_cues(data.get("cues"), ("cues",), child)
    child.cues.update(data.get("cues", {}))
    steps = read_steps(substitute(data["steps"], params), ("steps",), child, sides)
    if data.get("chapter", True) is False or not steps:
        return steps
    return (Section(data["block"].strip(), steps, check.tree.where(at), pose=True),)


def _shown(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def block_warnings(path: Path, context: Context, data: Any, tree: Tree) -> tuple[Problem, ...]:
    """Check a block on its own, with its parameters' defaults. Parameters without a default
    are checked where the block is included."""
    check = Checker(tree, context, (path.resolve(),))
    if check.schema(data, BLOCK_SCHEMA, ()):
        declared = data.get("params") or {}
        if all(v is not None for v in declared.values()):
            read_steps(substitute(data["steps"], declared), ("steps",), check, sides=True)
    return tuple(context.settle())


ALL_STEP_KINDS = tuple(STEP_SCHEMAS)


def _step(item: Any, keys: KeyPath, check: Checker, sides: bool) -> Step | None:
    where = check.tree.where(keys)
    if isinstance(item, str):
        if item in BARE_STEPS:
            return Chime(where)
        hint = suggest(item, ALL_STEP_KINDS)
        if item in STEP_SCHEMAS:
            check.error(keys, f"'{item}' needs a value, as in `- {item}: ...`")
        else:
            check.error(keys, f"unknown step '{item}'{hint}; steps are: {', '.join(ALL_STEP_KINDS)}")
        return None
    if not isinstance(item, dict):
        check.error(keys, f"a step is a mapping such as `- say: ...`, got {describe_value(item)}")
        return None
    kinds = [k for k in item if k in STEP_SCHEMAS and k != "steps"]
    if len(kinds) != 1:
        if not kinds:
            first = next(iter(item), "")
            check.error(keys + (first,), f"unknown step '{first}'{suggest(str(first), ALL_STEP_KINDS)}; "
                        f"steps are: {', '.join(ALL_STEP_KINDS)}", at_key=True)
        else:
            check.error(keys, f"one step has one kind, this one has {' and '.join(kinds)}: "
                        "put each in its own list item")
        return None
    kind = kinds[0]
    if kind == "breathe" and not _breathe_shorthand(item[kind], keys + (kind,), check):
        return None
    stray = [k for k in item if k != kind and k in _inner_keys(kind)]
    if item[kind] is None and stray and len(stray) == len(item) - 1:
        check.error(keys + (stray[0],), f"{', '.join(stray)} belong{'s' if len(stray) == 1 else ''} to `{kind}:` "
                    f"but {'is' if len(stray) == 1 else 'are'} not indented under it: indent "
                    f"{'it' if len(stray) == 1 else 'them'} two spaces more than `{kind}`", at_key=True)
        return None
    if not check.schema(item, STEP_SCHEMAS[kind], keys):
        return None
    value = item[kind]
    at = keys + (kind,)
    if kind == "say":
        check.text(value, at, sides)
        return Say(value.strip(), where)
    if kind == "pause":
        length = check.duration(value, at)
        return None if length is None else Pause(length, where)
    if kind == "chime":
        return Chime(where, value if isinstance(value, str) else "chime")
    if kind == "breathe":
        return _breathe(value, at, check, where)
    if kind == "hold":
        return _hold(value, at, check, sides, where)
    if kind == "sides":
        names = item.get("sides")
        if not isinstance(names, list):
            check.error(at, "list the sides, as in `sides: [right, left]`")
            return None
        for index, name in enumerate(names):
            check.plain(name, at + (index,))
        inner = read_steps(item["steps"], keys + ("steps",), check, sides=True)
        return Sides(tuple(str(n) for n in names), inner, where)
    check.plain(value, at)
    inner = read_steps(item["steps"], keys + ("steps",), check, sides)
    return Section(value.strip(), inner, where)


def _breathe(value: dict[str, Any], at: KeyPath, check: Checker, where: Location) -> Breathe | None:
    pattern_value = value.get("pattern", "relax")
    pattern: BreathPattern | None = None
    if isinstance(pattern_value, str):
        pattern = BREATH_PRESETS.get(pattern_value)
        if pattern is None:
            check.error(at + ("pattern",), f"unknown breath preset '{pattern_value}'"
                        f"{suggest(pattern_value, list(BREATH_PRESETS))}; presets: {', '.join(BREATH_PRESETS)}")
    elif isinstance(pattern_value, dict):
        found = [check.duration(pattern_value.get(k, 0), at + ("pattern", k)) for k in ("in", "hold", "out", "rest")]
        lengths = [length for length in found if length is not None]
        if len(lengths) == len(found):
            inhale, hold, exhale, rest = lengths
            if inhale == 0 or exhale == 0:
                check.error(at + ("pattern",), "`in` and `out` must be longer than 0")
            else:
                pattern = BreathPattern("custom", inhale, hold, exhale, rest)
    has_cycles, has_for = "cycles" in value, "for" in value
    if has_cycles == has_for:
        check.error(at, "give either `cycles: N` or `for: 2m`, not " + ("both" if has_cycles else "neither"))
        return None
    if pattern is None:
        return None
    if has_cycles:
        cycles = value["cycles"]
    else:
        span = check.duration(value["for"], at + ("for",), positive=True)
        if span is None:
            return None
        cycles = span // pattern.cycle
        if cycles < 1:
            check.error(at + ("for",), f"is shorter than one breath cycle ({pattern.cycle / 44100:.1f} s)")
            return None
        if cycles > MAX_CYCLES:
            check.error(at + ("for",), f"makes {cycles} cycles; at most {MAX_CYCLES}")
            return None
    low = _cycles_bound(value["min"], pattern.cycle, at + ("min",), check) if "min" in value else cycles
    high = _cycles_bound(value["max"], pattern.cycle, at + ("max",), check) if "max" in value else cycles
    if low is None or high is None:
        return None
    if not low <= cycles <= high:
        check.error(at, f"needs min <= cycles <= max; here {low} <= {cycles} <= {high} cycles")
        return None
    cue = value.get("cue", "words")
    fade = value.get("fade", 0)
    if fade and cue not in ("words", "count"):
        check.error(at + ("fade",), f"fades out spoken cues, so it needs cue: words or count, not {cue}")
        return None
    return Breathe(pattern, int(cycles), Cue(cue), where, fade, cue_pairs(check.cues), int(low), int(high))


CYCLES = re.compile(r"^\s*(\d+)\s*cycles?\s*$", re.IGNORECASE)


def _cycles_bound(value: Any, cycle: int, at: KeyPath, check: Checker) -> int | None:
    """A breathe step's `min` or `max`, in whole cycles: `'3 cycles'`, or a time (the whole cycles that
    fit in it)."""
    found = CYCLES.match(value) if isinstance(value, str) else None
    if found:
        count = int(found.group(1))
    else:
        span = check.duration(value, at, positive=True)
        if span is None:
            return None
        count = span // cycle  # the whole cycles that fit in it, as `for:` counts them
    if not 1 <= count <= MAX_CYCLES:
        check.error(at, f"makes {count} cycles; give between 1 and {MAX_CYCLES} (one cycle is "
                    f"{cycle / 44100:.1f} s)")
        return None
    return int(count)


def _hold(value: Any, at: KeyPath, check: Checker, sides: bool, where: Location) -> Hold | None:
    if not isinstance(value, dict):
        length = check.duration(value, at, positive=True)
        return None if length is None else Hold(length, length, length, (), where)
    length = check.duration(value["for"], at + ("for",), positive=True)
    low = check.duration(value["min"], at + ("min",), positive=True) if "min" in value else length
    high = check.duration(value["max"], at + ("max",), positive=True) if "max" in value else length
    reminders = tuple(value.get("reminders", ()))
    for index, text in enumerate(reminders):
        check.text(text, at + ("reminders", index), sides)
        if INLINE_PAUSE.search(text):
            check.error(at + ("reminders", index), "inline pauses are not allowed in reminders")
    if length is None or low is None or high is None:
        return None
    if not low <= length <= high:
        check.error(at, "needs min <= for <= max")
        return None
    return Hold(length, low, high, tuple(r.strip() for r in reminders), where)

