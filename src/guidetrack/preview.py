"""The live preview's state: a library kept checked and rendered while it is written.

Three threads share one `Preview`:

- the watcher (watchfiles) notes every save in the library, and in any folder outside it that a
  script takes a sound or voice from; the checker re-checks each script the save concerns (the
  script, a block it includes, its voice, its sounds, its language's words), the one a page shows
  first. The problems and the picture come from the plan, so they need no audio;
- the renderer renders what a page shows, one track at a time, in a `guidetrack render` process
  that it kills as soon as a newer save makes it stale, into a folder `serve` removes at the end.

watchfiles (the Rust `notify` crate, the reloader of uvicorn) sees a save within milliseconds on
every platform, groups an editor's write-and-rename into one change, and stops when asked.
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import watchfiles

from .engines import get_engine
from .errors import InvalidInput, Problem, Severity
from .files import sha256_of
from .loudness import Figures
from .plan import Plan
from .render import Checked, check_file, script_files
from .script import BUILTIN_VOICES, FileKind
from .units import format_clock, to_samples

log = logging.getLogger(__name__)
BUILT_IN = (Path(__file__).resolve().parent, BUILTIN_VOICES)  # what comes with guidetrack: not watched
STDERR_TAIL = 1500  # characters of a failed render's message shown on the page


def _sound_key(plan: Plan) -> str:
    """What the audio of a plan depends on: the timeline (with every audio file by its bytes),
    the voice and the loudness. A save that changes none of it renders nothing."""
    script = plan.script
    fields = {"plan": plan.cache_key(lambda path: sha256_of(Path(path))), "voice": script.voice.cache_key(),
              "loudness": repr(script.loudness)}
    return json.dumps(fields, sort_keys=True, default=str)


@dataclass
class Audio:
    """A track's preview audio: the newest render, and what is being rendered."""

    url: str = ""
    key: str = ""  # the sound key it was rendered from
    figures: str = ""  # measured on the file, as `render` printed them
    folder: Path | None = None
    failed: str = ""  # why rendering `failed_key` failed
    failed_key: str = ""
    rendering: str = ""  # the sound key being rendered now


@dataclass
class Entry:
    """One script (or block) of the library, as last checked."""

    file: Path
    name: str  # its path in the library without the suffix: the page's address
    checked: bool = False
    kind: FileKind = FileKind.SCRIPT
    problems: list[Problem] = field(default_factory=list)
    plans: dict[str, Plan] = field(default_factory=dict)  # variant -> plan, from the last save that planned
    variants: list[str] = field(default_factory=list)  # in the script's order, the main one first
    keys: dict[str, str] = field(default_factory=dict)  # variant -> its plan's sound key, when current
    sources: set[Path] = field(default_factory=set)
    version: int = 0  # counts the checks
    guessed: int = 0  # new clips whose length the plan guessed, while they are spoken
    audio: dict[str, Audio] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def title(self) -> str:
        plan = next(iter(self.plans.values()), None)
        return plan.script.title.removesuffix(f" ({plan.script.variant})") if plan else self.name


class _Either:
    """Set when either event is: stops watching to end serving, or to watch other folders."""

    def __init__(self, *events: threading.Event):
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


class Preview:
    """The library's state, kept current by the watcher, the checker and the renderer."""

    def __init__(self, library: Path, out: Path, cache_dir: Path | None = None):
        if not library.exists():
            raise InvalidInput(f"{library}: no such file or folder; name a library folder or a script")
        self.library = library
        self.folder = (library if library.is_dir() else library.parent).resolve()
        self.out = out
        self.cache_dir = cache_dir
        self.changed = threading.Condition()  # guards everything below; notified on every change
        self.version = 0
        self.entries: dict[Path, Entry] = {}  # by resolved path
        self.pending: dict[Path, int] = {}  # files to check -> priority (lower first)
        self.looked_at: dict[tuple[str, str], float] = {}  # (name, variant) a page shows -> when last asked
        self.stopping = threading.Event()
        self._rewatch = threading.Event()
        self._renders = itertools.count(1)
        self._threads: list[threading.Thread] = []
        self._started: set[str] = set()  # the engines started ahead of need
        self._scan(set())

    # -------------------------------------------------------- running

    def start(self) -> None:
        for target in (self._watch, self._check_loop, self._render_loop):
            thread = threading.Thread(target=target, name=f"guidetrack-{target.__name__.strip('_')}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        with self.changed:
            self.changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)

    def _bump(self) -> None:
        """Called holding `changed`: tells every page that something changed."""
        self.version += 1
        self.changed.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """The state's version once it is past `seen`, or after `timeout` seconds."""
        with self.changed:
            self.changed.wait_for(lambda: self.version != seen or self.stopping.is_set(), timeout)
            return self.version

    # -------------------------------------------------------- watching and checking

    def _scan(self, changed: set[Path]) -> None:
        """Find the library's scripts, and queue those that `changed` concerns (all at the start);
        called holding `changed`, or before the threads start."""
        found = {file.resolve(): (file, root) for file, root in script_files([self.library])}
        for path in list(self.entries):
            if path not in found:
                del self.entries[path]
                self.pending.pop(path, None)
                self._bump()
        for path, (file, _) in found.items():
            entry = self.entries.get(path)
            if entry is None:
                name = (path.relative_to(self.folder) if path.is_relative_to(self.folder) else Path(path.name))
                self.entries[path] = Entry(file, name.with_suffix("").as_posix())
                self._queue(path, 1)
            elif path in changed or entry.sources & changed or entry.errors or not entry.checked:
                self._queue(path, 0 if path in changed else 1)

    def _queue(self, path: Path, priority: int) -> None:
        entry = self.entries[path]
        if any(name == entry.name for name, _ in self.looked_at):
            priority -= 2  # what a page shows comes first
        self.pending[path] = min(priority, self.pending.get(path, priority))

    def _watch_folders(self) -> list[Path]:
        with self.changed:
            sources = {s for entry in self.entries.values() for s in entry.sources}
        return sorted({self.folder} | {folder for folder in self._outside(sources) if folder.is_dir()})

    def _watch(self) -> None:
        while not self.stopping.is_set():
            folders = self._watch_folders()
            self._rewatch.clear()
            log.debug("watching %s", ", ".join(map(str, folders)))
            try:
                for changes in watchfiles.watch(*folders, stop_event=_Either(self.stopping, self._rewatch),
                                                raise_interrupt=False, rust_timeout=1000, yield_on_timeout=False):
                    paths = {Path(path).resolve() for _, path in changes}
                    log.debug("changed: %s", ", ".join(map(str, sorted(paths))))
                    with self.changed:
                        self._scan(paths)
                        self.changed.notify_all()
            except (OSError, RuntimeError) as err:  # a watched folder went away: watch what is left
                log.debug("watching failed (%s); watching again", err)
                self.stopping.wait(0.5)

    def _check_loop(self) -> None:
        while not self.stopping.is_set():
            with self.changed:
                self.changed.wait_for(lambda: bool(self.pending) or self.stopping.is_set())
                if self.stopping.is_set():
                    return
                path = min(self.pending, key=lambda p: self.pending[p])
                del self.pending[path]
                entry = self.entries.get(path)
            if entry is not None:
                self._check(path, entry)

    def _check(self, path: Path, entry: Entry) -> None:
        """Check a script twice when it has new lines: first with their lengths guessed, so the
        picture and problems show at once, then with them spoken, for the exact plan."""
        started = time.perf_counter()
        estimated = self._checked(entry, estimate=True)
        if estimated.estimated and not self._publish(path, entry, estimated, guessed=estimated.estimated):
            return
        exact = self._checked(entry, estimate=False) if estimated.estimated else estimated
        if not self._publish(path, entry, exact):
            return
        log.debug("checked %s in %.2f s", entry.file, time.perf_counter() - started)
        for engine in {plan.script.voice.engine for plan in exact.plans} - self._started:
            try:  # the next save's new line is spoken at once, not after the engine starts
                get_engine(engine).ensure_started()
                self._started.add(engine)
            except Exception as err:  # it fails again, with its message, when it is needed
                log.debug("starting %s failed: %s", engine, err)

    def _checked(self, entry: Entry, estimate: bool) -> Checked:
        try:
            return check_file(entry.file, self.library if self.library.is_dir() else None, self.cache_dir, estimate)
        except Exception as err:  # the engine, the disk: shown on the page, never the end of serving
            log.debug("checking %s failed", entry.file, exc_info=True)
            return Checked(entry.file, entry.kind, [], [Problem(f"could not check this script: {err}")])

    def _publish(self, path: Path, entry: Entry, checked: Checked, guessed: int = 0) -> bool:
        """Show what a check found; False if the script was removed meanwhile. A plan with
        `guessed` clip lengths is shown but not rendered."""
        plans = checked.plans
        with self.changed:
            if self.entries.get(path) is not entry:
                return False
            entry.checked, entry.kind, entry.problems, entry.guessed = True, checked.kind, checked.problems, guessed
            entry.version += 1
            if plans:
                entry.plans = {plan.script.variant: plan for plan in plans}
                entry.variants = [plan.script.variant for plan in plans]
                entry.keys = {} if guessed else {plan.script.variant: _sound_key(plan) for plan in plans}
                before = self._outside(entry.sources)
                entry.sources = {Path(s).resolve() for plan in plans for s in plan.script.sources}
                if self._outside(entry.sources) - before:
                    self._rewatch.set()
            elif entry.errors:
                entry.keys = {}  # nothing current to render
            self._bump()
        return True

    def _outside(self, sources: set[Path]) -> set[Path]:
        """The folders outside the library that these files are in, but for guidetrack's own."""
        return {s.parent for s in sources
                if not any(s.is_relative_to(folder) for folder in (self.folder, *BUILT_IN))}

    # -------------------------------------------------------- rendering

    def look(self, name: str, variant: str) -> None:
        """A page shows this track: render it, and check its script first when saved."""
        with self.changed:
            self.looked_at[(name, variant)] = time.monotonic()
            self.changed.notify_all()

    def _next_render(self) -> tuple[Entry, str, str] | None:
        """The track to render: the one a page asked for last, of those whose audio is stale."""
        for name, variant in sorted(self.looked_at, key=self.looked_at.__getitem__, reverse=True):
            entry = self.entry(name)
            if entry is None or entry.name in {self.entries[p].name for p in self.pending}:
                continue  # being checked again: wait for that
            key = entry.keys.get(variant)
            audio = entry.audio.setdefault(variant, Audio())
            if key and key != audio.key and key != audio.failed_key:
                return entry, variant, key
        return None

    def _render_loop(self) -> None:
        while not self.stopping.is_set():
            with self.changed:
                self.changed.wait_for(lambda: self._next_render() is not None or self.stopping.is_set())
                if self.stopping.is_set():
                    return
                job = self._next_render()
                assert job is not None
                entry, variant, key = job
                audio = entry.audio[variant]
                audio.rendering = key
                self._bump()
            self._render(entry, variant, key, audio)

    def _render(self, entry: Entry, variant: str, key: str, audio: Audio) -> None:
        number = next(self._renders)
        folder = self.out / str(number)
        folder.mkdir(parents=True)
        out = folder / f"{Path(entry.name).name}.mp3"
        command = [sys.executable, "-m", "guidetrack", "render", str(entry.file), "-o", str(out), "--quiet", "--json"]
        if variant:
            command += ["--variant", variant]
        if self.cache_dir is not None:
            command += ["--cache-dir", str(self.cache_dir)]
        log.debug("rendering: %s", " ".join(command))
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stdout = stderr = ""
        while True:
            try:
                stdout, stderr = process.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                with self.changed:
                    stale = self.stopping.is_set() or entry.keys.get(variant) != key
                if stale:  # a newer save: this render would only be thrown away
                    process.kill()
                    process.communicate()
                    break
        with self.changed:
            audio.rendering = ""
            if process.returncode == 0:
                old, audio.folder = audio.folder, folder
                audio.key, audio.url = key, f"/audio/{number}/{quote(out.name)}"
                audio.failed = audio.failed_key = ""
                try:
                    written = json.loads(stdout)[0]
                    length = format_clock(to_samples(written["duration"]))
                    audio.figures = f"rendered {length}, measured: {Figures.from_json(written)}"
                except (ValueError, KeyError, IndexError, TypeError):
                    audio.figures = "rendered"
                if old is not None:  # a page still playing it has the newer one now
                    shutil.rmtree(old, ignore_errors=True)
                log.debug("rendered %s in %.1f s", out, time.perf_counter() - started)
            else:
                shutil.rmtree(folder, ignore_errors=True)
                if process.returncode > 0 and entry.keys.get(variant) == key:
                    audio.failed, audio.failed_key = stderr.strip()[-STDERR_TAIL:] or "the render failed", key
            self._bump()

    # -------------------------------------------------------- what pages show

    def entry(self, name: str) -> Entry | None:
        """Called holding `changed`."""
        return next((e for e in self.entries.values() if e.name == name), None)

    def audio_file(self, number: str, name: str) -> Path | None:
        if not number.isdigit() or "/" in name or name.startswith("."):
            return None
        file = self.out / number / name
        return file if file.is_file() else None
