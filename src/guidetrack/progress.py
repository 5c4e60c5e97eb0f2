"""How a build reports: a live display on a terminal (overall, and what each worker renders),
plain lines otherwise (CI, a pipe, a log file), and the closing table."""

from __future__ import annotations

import threading
import time
from typing import IO, Any

from .build import Reporter, Summary


class PlainReporter(Reporter):
    """One line per event, flushed: readable in CI logs."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.total = 0
        self.done = 0
        self.lock = threading.Lock()

    def _line(self, text: str) -> None:
        with self.lock:
            print(text, file=self.stream, flush=True)

    def planned(self, total: int, skipped: int) -> None:
        self.total, self.done = total, skipped
        self._line(f"build: {total} outputs, {skipped} up to date, {total - skipped} to render")

    def started(self, worker: str, name: str) -> None:
        self._line(f"  rendering {name}  ({worker})")

    def finished(self, name: str, ok: bool, seconds: float, message: str = "") -> None:
        self.done += 1
        status = f"built in {seconds:.1f} s" if ok else "FAILED: " + message.splitlines()[0]
        self._line(f"[{self.done}/{self.total}] {name}  {status}")


class LiveReporter(Reporter):
    """rich's live display: an overall bar, and a line per worker with what it renders now."""

    def __init__(self, stream: IO[str]):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(file=stream)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, transient=False)
        self.overall = self.progress.add_task("library", total=None)
        self.workers: dict[str, tuple[str, float]] = {}
        self.lock = threading.Lock()
        self.live: Any = None  # a rich Live display, from `planned` on

    def _view(self):
        from rich.console import Group
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        now = time.monotonic()
        with self.lock:
            for worker, (name, since) in sorted(self.workers.items()):
                table.add_row(f"[dim]{worker}[/]", name, f"{now - since:5.1f} s")
        return Group(self.progress, table)

    def planned(self, total: int, skipped: int) -> None:
        from rich.live import Live

        self.progress.update(self.overall, total=total, completed=skipped)
        self.live = Live(get_renderable=self._view, console=self.console, refresh_per_second=4)
        self.live.start()

    def started(self, worker: str, name: str) -> None:
        with self.lock:
            self.workers[worker] = (name, time.monotonic())

    def finished(self, name: str, ok: bool, seconds: float, message: str = "") -> None:
        with self.lock:
            for worker, (current, _) in list(self.workers.items()):
                if current == name:
                    del self.workers[worker]
        self.progress.advance(self.overall)
        if not ok:
            self.console.print(f"[red]failed[/] {name}: {message.splitlines()[0]}")

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


def reporter_for(stream: IO[str]) -> Reporter:
    return LiveReporter(stream) if stream.isatty() else PlainReporter(stream)


def summary_table(summary: Summary, out, stream: IO[str]) -> None:
    """What was built, skipped, removed and failed (each failure with its whole message)."""
    lines = []
    rows = [("built", n) for n in summary.built] + [("failed", f.what) for f in summary.failed]
    for status, name in rows:
        lines.append(f"  {status:<7} {name}")
        if status == "failed":
            failure = next(f for f in summary.failed if f.what == name)
            lines.extend(f"          {line}" for line in failure.message.splitlines())
    totals = (f"{len(summary.built)} built, {len(summary.skipped)} up to date, {len(summary.failed)} failed"
              + (f", {len(summary.removed)} removed" if summary.removed else "")
              + f" in {summary.seconds:.1f} s -> {out}")
    if summary.interrupted:
        totals += "\ninterrupted: every finished render is kept; run the same build again to continue"
    print("\n".join([*lines, totals]), file=stream, flush=True)


class PlainStages:
    """A render's progress where nobody watches a terminal: one line per stage."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def stage(self, name: str, total: int = 0) -> None:
        if name:
            print(f"  {name}", file=self.stream, flush=True)

    def advance(self, done: int) -> None:
        pass

    def close(self) -> None:
        pass


class LiveStages:
    """A render's progress on a terminal: the stage, a bar, the percentage and the time left."""

    def __init__(self, stream: IO[str]):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("  {task.description}"), BarColumn(), TaskProgressColumn(),
                                 TimeRemainingColumn(), console=Console(file=stream), transient=True)
        self.task: Any = None
        self.progress.start()

    def stage(self, name: str, total: int = 0) -> None:
        if self.task is not None and not name:
            self.progress.update(self.task, total=total or None, completed=0)
            return
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(name, total=total or None)

    def advance(self, done: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=done)

    def close(self) -> None:
        self.progress.stop()


def stages_for(stream: IO[str], quiet: bool = False) -> PlainStages | LiveStages | None:
    """A live bar on a terminal, plain lines otherwise, nothing with --quiet."""
    if quiet:
        return None
    return LiveStages(stream) if stream.isatty() else PlainStages(stream)
