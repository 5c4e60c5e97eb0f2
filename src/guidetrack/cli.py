"""The command line: the only module that prints or exits.

Exit codes: 0 success, 2 invalid input (bad script, missing file, impossible
target), 1 anything else.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import GuidetrackError, InvalidInput
from .units import format_clock, to_seconds

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Turn yoga, relaxation and breathwork scripts into breath-paced MP3 tracks.",
)

CacheOption = Annotated[Optional[Path], typer.Option(
    "--cache-dir", help="Where spoken clips are cached (default: the user cache dir, or $GUIDETRACK_CACHE_DIR).")]


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _guarded(action: Callable[[], int | None]) -> None:
    """Run a command, turning our errors into a message and an exit code, never a traceback."""
    try:
        code = action() or 0
    except InvalidInput as err:
        for problem in err.problems:
            _say(f"error: {problem}" if problem.where is None else str(problem))
        code = 2
    except GuidetrackError as err:
        _say(f"error: {err}")
        code = 1
    except KeyboardInterrupt:
        _say("interrupted; nothing was left half-written")
        code = 130
    raise typer.Exit(code)


def _warn(plan) -> None:
    for warning in plan.warnings:
        _say(str(warning))


@app.command()
def render(
    script: Annotated[Path, typer.Argument(help="The sequence script (YAML).")],
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Output MP3 (default out/<slug>.mp3).")] = None,
    cache_dir: CacheOption = None,
) -> None:
    """Render SCRIPT to an MP3."""

    def action() -> None:
        from .render import render as render_script

        started = time.perf_counter()
        result = render_script(script, out, cache_dir)
        _warn(result.plan)
        spoken = result.cache_hits + result.cache_misses
        _say(
            f"wrote {result.out}  {format_clock(result.samples)}  "
            f"{len(result.plan.speech())} cues, {spoken} distinct utterances "
            f"({result.cache_misses} new, {result.cache_hits} cached)  "
            f"in {time.perf_counter() - started:.1f} s"
        )

    _guarded(action)


@app.command()
def plan(
    script: Annotated[Path, typer.Argument(help="The sequence script (YAML).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the timeline as JSON.")] = False,
    cache_dir: CacheOption = None,
) -> None:
    """Print SCRIPT's timeline: when each cue, chime and tone starts, without rendering audio."""

    def action() -> None:
        from .render import plan_script

        timeline, _ = plan_script(script, cache_dir)
        if as_json:
            typer.echo(json.dumps(timeline.to_json(), indent=2, ensure_ascii=False))
            return
        _warn(timeline)
        typer.echo(f"{timeline.script.title}  ({format_clock(timeline.length)})")
        marks = [(c.start, 0, f"== {c.title} ==") for c in timeline.chapters]
        marks += [(e.start, 1, f"{e.kind:6}  {e.text}" if e.kind != "tone" else f"tone    {e.text}")
                  for e in timeline.events]
        for start, _, text in sorted(marks):
            typer.echo(f"{format_clock(start):>8}  {text}")

    _guarded(action)


@app.command()
def validate(
    scripts: Annotated[list[Path], typer.Argument(help="Scripts to check.")],
    cache_dir: CacheOption = None,
) -> None:
    """Check scripts (format, values, fitting) without rendering audio."""

    def action() -> int:
        from .render import plan_script

        failed = 0
        for path in scripts:
            try:
                timeline, _ = plan_script(path, cache_dir)
            except InvalidInput as err:
                failed += 1
                for problem in err.problems:
                    _say(str(problem) if problem.where else f"error: {problem}")
                continue
            _warn(timeline)
            typer.echo(f"ok  {path}  ({format_clock(timeline.length)}, "
                       f"{to_seconds(timeline.length):.1f} s)")
        return 2 if failed else 0

    _guarded(action)


def main() -> None:
    # A polite kill (SIGTERM) unwinds like Ctrl-C, so temporary files are removed.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    app(prog_name="guidetrack")


if __name__ == "__main__":
    sys.exit(main())
