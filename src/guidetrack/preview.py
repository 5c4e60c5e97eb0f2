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
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import watchfiles

from .decoded import decoded
from .engines import get_engine
from .errors import InvalidInput, Problem, Severity
from .files import sha256_of
from .loudness import Figures
from .plan import Plan
from .render import Checked, check_file, script_files, sound_key
from .script import BUILTIN_VOICES, FileKind
from .units import format_clock, to_samples

log = logging.getLogger(__name__)
BUILT_IN = (Path(__file__).resolve().parent, BUILTIN_VOICES)  # what comes with guidetrack: not watched
STDERR_TAIL = 1500  # characters of a failed render's message shown on the page
LOOK_FRESH = 45.0  # seconds a page's interest lasts: an open page renews it (every event, or keep-alive)
STOP_GRACE = 5.0  # seconds a stopped render has to clean up before it is killed


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

    def variant(self, asked: str) -> str:
        """The variant a page asking for `asked` shows: that one, or the main one."""
        return asked if asked in self.variants else (self.variants[0] if self.variants else "")


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
        self.single = library.is_file()  # one script: its folder and its sources' are watched, not below
        self.folder = (library.parent if self.single else library).resolve()
        self.out = out
        self.cache_dir = cache_dir
        self.changed = threading.Condition()  # guards everything below; notified on every change
        self.version = 0
        self.entries: dict[Path, Entry] = {}  # by resolved path
        self.pending: dict[Path, int] = {}  # files to check -> priority (lower first)
        self.looked_at: dict[tuple[str, str], float] = {}  # (name, variant) a page shows -> when last asked
        self.served: dict[str, Path] = {}  # an audio URL's path -> the render it names
        self.stopping = threading.Event()
        self._rewatch = threading.Event()
        self._forget_decoded = False  # a file changed: decoded sounds may be stale
        self._renders = itertools.count(1)
        self._token = secrets.token_hex(4)  # in every audio URL: a restarted server's cannot be mistaken for these
        self._threads: list[threading.Thread] = []
        self._started: set[str] = set()  # the engines started ahead of need
        self._digests: dict[tuple[Path, int, int], str] = {}  # (file, mtime, size) -> sha256
        self._rescan(set())

    # -------------------------------------------------------- running

    def start(self) -> None:
        for step in (self._watch, self._check_next, self._render_next):
            thread = threading.Thread(target=self._forever(step), name=f"guidetrack-{step.__name__.strip('_')}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def _forever(self, step: Callable[[], None]) -> Callable[[], None]:
        """A thread's loop: a step that fails is logged and the thread goes on; serving never
        ends because of a file, a render or a bug in one step."""
        def loop() -> None:
            while not self.stopping.is_set():
                try:
                    step()
                except Exception:
                    log.exception("%s failed; carrying on", step.__name__.strip("_"))
                    self.stopping.wait(1.0)
        return loop

    def stop(self) -> None:
        self.stopping.set()
        with self.changed:
            self.changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=STOP_GRACE + 5)

    def _bump(self) -> None:
        """Called holding `changed`: tells every page that something changed."""
        self.version += 1
        self.changed.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """The state's version once it is past `seen`, or after `timeout` seconds."""
        with self.changed:
            self.changed.wait_for(lambda: self.version != seen or self.stopping.is_set(), timeout)
            return self.version

    # -------------------------------------------------------- watching

    def _find(self) -> dict[Path, Path]:
        """The library's scripts and blocks now: resolved path -> the path as found."""
        if not (self.library.is_file() if self.single else self.library.is_dir()):
            return {}  # moved or removed: its scripts are gone until it is back
        return {file.resolve(): file for file, _ in script_files([self.library])}

    def _apply(self, found: dict[Path, Path], changed: set[Path] | None) -> None:
        """Take in the scripts found, and queue those that `changed` concerns (None: all of them).
        Called holding `changed`."""
        for path in [p for p in self.entries if p not in found]:
            self._forget(self.entries.pop(path))
            self.pending.pop(path, None)
            self._bump()
        for path, file in found.items():
            entry = self.entries.get(path)
            if entry is None:
                name = path.relative_to(self.folder) if path.is_relative_to(self.folder) else Path(path.name)
                self.entries[path] = entry = Entry(file, name.with_suffix("").as_posix())
            if changed is None or path in changed or entry.sources & changed or entry.errors or not entry.checked:
                self._queue(path, 0 if changed and path in changed else 1)
        if changed:
            self._forget_decoded = True
        self.changed.notify_all()

    def _forget(self, entry: Entry) -> None:
        """A removed script's previews go with it."""
        for audio in entry.audio.values():
            if audio.folder is not None:
                shutil.rmtree(audio.folder, ignore_errors=True)
        self.served = {url: file for url, file in self.served.items()
                       if not any(a.folder is not None and file.is_relative_to(a.folder) for a in entry.audio.values())}

    def _queue(self, path: Path, priority: int) -> None:
        if any(name == self.entries[path].name for name, _ in self._looked_at_now()):
            priority -= 2  # what a page shows comes first
        self.pending[path] = min(priority, self.pending.get(path, priority))

    def _watched(self) -> tuple[list[Path], bool]:
        """The folders to watch, and whether below them too."""
        with self.changed:
            sources = {s for entry in self.entries.values() for s in entry.sources}
        folders = {self.folder} | self._folders_of(sources)
        return sorted(f for f in folders if f.is_dir()), not self.single

    def _folders_of(self, sources: set[Path]) -> set[Path]:
        """The folders these files need watched, besides the library's (below which everything is
        watched, unless it is one script's): never guidetrack's own."""
        within = BUILT_IN if self.single else (self.folder, *BUILT_IN)
        return {s.parent for s in sources if not any(s.is_relative_to(folder) for folder in within)}

    def _rescan(self, changed: set[Path] | None) -> None:
        found = self._find()
        with self.changed:
            self._apply(found, changed)

    def _watch(self) -> None:
        """Watch until the folders to watch change (or serving ends); every change on the way is
        taken in. After a restart, everything is checked again: a change may have been missed."""
        self._rewatch.clear()
        folders, below = self._watched()
        if not folders:
            self.stopping.wait(0.5)  # the library is gone: look again soon
            self._rescan(None)
            return
        log.debug("watching %s%s", ", ".join(map(str, folders)), "" if below else " (not below)")
        try:
            for changes in watchfiles.watch(*folders, stop_event=_Either(self.stopping, self._rewatch),
                                            recursive=below, raise_interrupt=False, rust_timeout=1000,
                                            yield_on_timeout=False):
                paths = {Path(path).resolve() for _, path in changes}
                log.debug("changed: %s", ", ".join(map(str, sorted(paths))))
                self._rescan(paths)
            missed: set[Path] | None = set()
        except (OSError, RuntimeError) as err:  # a watched folder went away: watch what is there now
            log.debug("watching stopped (%s); watching again", err)
            self.stopping.wait(0.5)
            missed = None
        self._rescan(missed)

    # -------------------------------------------------------- checking

    def _check_next(self) -> None:
        with self.changed:
            self.changed.wait_for(lambda: bool(self.pending) or self.stopping.is_set(), timeout=5)
            if not self.pending:
                return
            path = min(self.pending, key=lambda p: self.pending[p])
            del self.pending[path]
            entry = self.entries.get(path)
            forget, self._forget_decoded = self._forget_decoded, False
        if forget:
            decoded.cache_clear()  # a sound file may have been replaced: decode it again
        if entry is not None:
            self._check(path, entry)

    def _check(self, path: Path, entry: Entry) -> None:
        """Check a script; when it has new lines, first with their lengths guessed, so that the
        picture and problems show at once, then with them spoken, for the exact plan."""
        started = time.perf_counter()
        checked = self._checked(entry, estimate=True)
        if checked.estimated or any(p.severity is Severity.ERROR for p in checked.problems):
            if checked.estimated and not self._publish(path, entry, checked, guessed=checked.estimated):
                return
            checked = self._checked(entry, estimate=False)  # a guess may not fit where the spoken lines do
        if not self._publish(path, entry, checked):
            return
        log.debug("checked %s in %.2f s", entry.file, time.perf_counter() - started)
        for engine in {plan.script.voice.engine for plan in checked.plans} - self._started:
            try:  # the next save's new line is spoken at once, not after the engine starts
                get_engine(engine).ensure_started()
                self._started.add(engine)
            except Exception as err:  # it fails again, with its message, when it is needed
                log.debug("starting %s failed: %s", engine, err)

    def _checked(self, entry: Entry, estimate: bool) -> Checked:
        try:
            return check_file(entry.file, None if self.single else self.library, self.cache_dir, estimate)
        except Exception as err:  # the engine, the disk: shown on the page, never the end of serving
            log.debug("checking %s failed", entry.file, exc_info=True)
            return Checked(entry.file, entry.kind, [], [Problem(f"could not check this script: {err}")])

    def _sound_key(self, plan: Plan) -> str:
        """What the audio of a plan depends on (see `render.sound_key`) and its loudness. A save that
        changes none of it renders nothing."""
        fields = {**sound_key(plan, self._digest, get_engine(plan.script.voice.engine)),
                  "loudness": repr(plan.script.loudness)}
        return json.dumps(fields, sort_keys=True, default=str)

    def _digest(self, path: str) -> str:
        stat = os.stat(path)
        key = (Path(path), stat.st_mtime_ns, stat.st_size)
        if key not in self._digests:
            self._digests[key] = sha256_of(Path(path))
        return self._digests[key]

    def _publish(self, path: Path, entry: Entry, checked: Checked, guessed: int = 0) -> bool:
        """Show what a check found; False if the script was removed meanwhile. A plan with
        `guessed` clip lengths is shown but not rendered."""
        plans, problems = checked.plans, list(checked.problems)
        keys: dict[str, str] = {}
        if plans and not guessed:
            try:
                keys = {plan.script.variant: self._sound_key(plan) for plan in plans}
            except OSError as err:  # a sound removed since the plan read it
                problems.append(Problem(f"{err.filename or 'a sound'}: {err.strerror or err}; save again once it is back"))
        sources = {Path(s).resolve() for plan in plans for s in plan.script.sources}
        with self.changed:
            if self.entries.get(path) is not entry:
                return False
            entry.checked, entry.kind, entry.problems, entry.guessed = True, checked.kind, problems, guessed
            entry.version += 1
            if plans:
                entry.plans = {plan.script.variant: plan for plan in plans}
                entry.variants = [plan.script.variant for plan in plans]
                entry.keys = keys
                if self._folders_of(sources) - self._folders_of(entry.sources):
                    self._rewatch.set()
                entry.sources = sources
            elif entry.errors:
                entry.keys = {}  # nothing current to render
            self._bump()
        return True

    # -------------------------------------------------------- rendering

    def look(self, name: str, variant: str) -> None:
        """A page shows this track: render it, and check its script first when saved."""
        with self.changed:
            entry = self.entry(name)
            if entry is not None:
                self.looked_at[(name, entry.variant(variant))] = time.monotonic()
                self.changed.notify_all()

    def _looked_at_now(self) -> list[tuple[str, str]]:
        """What open pages show, the one asked for last first. Called holding `changed`."""
        now = time.monotonic()
        for key in [k for k, when in self.looked_at.items() if now - when > LOOK_FRESH]:
            del self.looked_at[key]
        return sorted(self.looked_at, key=self.looked_at.__getitem__, reverse=True)

    def _next_render(self) -> tuple[Entry, str, str] | None:
        """The track to render: the one a page asked for last, of those whose audio is stale.
        Called holding `changed`."""
        checking = {self.entries[p].name for p in self.pending}
        for name, variant in self._looked_at_now():
            entry = self.entry(name)
            if entry is None or name in checking:
                continue  # being checked again: wait for that
            key = entry.keys.get(variant)
            audio = entry.audio.setdefault(variant, Audio())
            if key and key != audio.key and key != audio.failed_key:
                return entry, variant, key
        return None

    def _render_next(self) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self._next_render() is not None or self.stopping.is_set(), timeout=5)
            job = self._next_render()
            if job is None or self.stopping.is_set():
                return
            entry, variant, key = job
            audio = entry.audio[variant]
            audio.rendering = key
            self._bump()
        try:
            self._render(entry, variant, key, audio)
        finally:
            with self.changed:
                audio.rendering = ""
                self._bump()

    def _stale(self, entry: Entry, variant: str, key: str) -> bool:
        with self.changed:
            return (self.stopping.is_set() or self.entries.get(entry.file.resolve()) is not entry
                    or entry.keys.get(variant) != key)

    def _render(self, entry: Entry, variant: str, key: str, audio: Audio) -> None:
        """Render one track in a `guidetrack render` process, stopped as soon as it is stale."""
        folder = self.out / f"{self._token}-{next(self._renders)}"
        out = folder / f"{Path(entry.name).name}.mp3"
        command = [sys.executable, "-m", "guidetrack", "render", str(entry.file), "-o", str(out), "--quiet", "--json"]
        command += [] if self.single else ["--library", str(self.library)]
        command += ["--variant", variant] if variant else []
        command += ["--cache-dir", str(self.cache_dir)] if self.cache_dir is not None else []
        log.debug("rendering: %s", " ".join(command))
        started = time.perf_counter()
        stopped, stdout, stderr = False, "", ""
        try:
            folder.mkdir(parents=True)
            # a session of its own: a stale render is stopped with its ffmpeg and engine workers
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8",
                                       errors="replace", start_new_session=True)
        except OSError as err:
            shutil.rmtree(folder, ignore_errors=True)
            self._failed(entry, variant, key, audio, f"could not start the render: {err}")
            return
        while True:
            try:
                stdout, stderr = process.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if not stopped and self._stale(entry, variant, key):  # a newer save: it would be thrown away
                    stopped = True
                    _signal(process, signal.SIGTERM)  # it removes what it was writing, as on Ctrl-C
                    try:
                        stdout, stderr = process.communicate(timeout=STOP_GRACE)
                    except subprocess.TimeoutExpired:
                        _signal(process, signal.SIGKILL)
                        stdout, stderr = process.communicate()
                    break
        if process.returncode != 0 or stopped:
            shutil.rmtree(folder, ignore_errors=True)
            if not stopped:
                self._failed(entry, variant, key, audio, stderr.strip()[-STDERR_TAIL:] or
                             f"the render ended with code {process.returncode}")
            return
        try:
            written = json.loads(stdout)[0]
            figures = f"rendered {format_clock(to_samples(written['duration']))}, measured: {Figures.from_json(written)}"
        except (ValueError, KeyError, IndexError, TypeError):
            figures = "rendered"
        url = f"/audio/{folder.name}/{quote(out.name)}"
        with self.changed:
            if self.entries.get(entry.file.resolve()) is not entry:
                shutil.rmtree(folder, ignore_errors=True)
                return
            old, audio.folder = audio.folder, folder
            audio.key, audio.url, audio.figures, audio.failed, audio.failed_key = key, url, figures, "", ""
            self.served[url] = out
            if old is not None:  # a page still playing it has the newer one now
                self.served = {u: f for u, f in self.served.items() if not f.is_relative_to(old)}
                shutil.rmtree(old, ignore_errors=True)
            self._bump()
        log.debug("rendered %s in %.1f s", out, time.perf_counter() - started)

    def _failed(self, entry: Entry, variant: str, key: str, audio: Audio, why: str) -> None:
        with self.changed:
            if entry.keys.get(variant) == key:
                audio.failed, audio.failed_key = why, key  # not tried again until the next save
            self._bump()

    # -------------------------------------------------------- what pages show

    def entry(self, name: str) -> Entry | None:
        """Called holding `changed`."""
        return next((e for e in self.entries.values() if e.name == name), None)

    def audio_file(self, url: str) -> Path | None:
        """The render an audio URL names: only the URLs handed out are served."""
        with self.changed:
            file = self.served.get(url)
        return file if file is not None and file.is_file() else None


def _signal(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
