"""Build a whole library: every script and variant under a folder, in parallel, incrementally.

Only the process that runs `build` writes to the output folder: workers (local processes or
Dask workers on other machines) render into their own temporary folders and hand back the
bytes, which are written atomically, followed by the manifest entry. So an interrupted or
killed build leaves no partial file at any output path, and the next one continues from the
manifest.

Whether an output is rebuilt is decided from a fingerprint of everything that changes its
sound or tags: the bytes of the script, every block it includes, every audio file, cover, voice
profile, lexicon and voice model it uses; the variant; the output settings; the speech engine's
version; guidetrack's render version. Never from modification times.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import __version__
from .encode import FORMATS, Output, cores
from .engines import engine_version
from .errors import GuidetrackError, InvalidInput
from .files import check_writable, remove_stale_parts, replacing, sha256_of, temporary_folder
from .languages import FOLDER as LANGUAGE_FILES
from .manifest import Entry, JobResult, Manifest, StoredFile
from .render import free_memory_promptly, script_files
from .script import BUILTIN_VOICES, LibrarySettings, Script, load_any, read_library
from .units import to_seconds

RENDER_VERSION = 4  # bump when a change to guidetrack changes what a render writes (3: languages, hibari; 4: no tags of guidetrack's own)
PACKAGE = Path(__file__).resolve().parent


# ---------------------------------------------------------------- what there is to build


@dataclass(frozen=True)
class Job:
    """One output: a script's variant, rendered with `output` to `name` (relative to the output folder)."""

    name: str  # e.g. evening/wind-down-short.mp3
    script: str  # relative to the library
    variant: str
    output: Output
    fingerprint: str
    title: str
    sources: tuple[Path, ...] = ()  # every file the render reads, for a cluster worker
    length: float = 0.0  # seconds, when the script gives a duration: the longest renders start first
    author: str = ""  # the library's author and title (library.yaml), for a script that names no author or album
    album: str = ""
    order: int = 0  # the variant's place in its script: the main (first) variant is 0


@dataclass
class Failure:
    what: str  # the script, or the output
    message: str


def output_name(script: Script, library: Path, output: Output) -> str:
    """Where a script's variant goes in the output folder: the script's own folder in the library,
    and the name `render` gives it (<script>-<variant>.mp3)."""
    folder = Path(script.path).resolve().parent.relative_to(library.resolve())
    return (folder / f"{script.slug}{output.suffix}").as_posix()


class _Hashes:
    """sha256 of each file's bytes, read once per build (blocks are shared by many scripts)."""

    def __init__(self) -> None:
        self._seen: dict[Path, str] = {}

    def __call__(self, path: Path) -> str:
        if path not in self._seen:
            self._seen[path] = sha256_of(path)
        return self._seen[path]


def _source_name(path: Path, library: Path) -> str:
    """How a source file is named in fingerprints and cluster payloads: relative to the library,
    `builtin:` for what comes with guidetrack, else its absolute path."""
    path = path.resolve()
    if path.is_relative_to(library):
        return path.relative_to(library).as_posix()
    for builtin in (BUILTIN_VOICES, LANGUAGE_FILES):
        if path.is_relative_to(builtin):
            return f"builtin:{builtin.name}/" + path.relative_to(builtin).as_posix()
    return str(path)


def plan_jobs(library: Path, output: Output, hashes: _Hashes | None = None,
              settings: LibrarySettings | None = None) -> tuple[list[Job], list[Failure]]:
    """Every output the library should have, with its fingerprint; scripts that cannot be read
    are failures (with every problem, at its file and line)."""
    library = library.resolve()
    hashes = hashes or _Hashes()
    settings = settings or LibrarySettings()
    shared = [settings.source] if settings.source else []  # library.yaml: every class's tags may come from it
    jobs: list[Job] = []
    failures: list[Failure] = []
    versions: dict[str, str] = {}
    for path, _ in script_files([library]):
        relative = path.relative_to(library).as_posix()
        try:
            scripts = list(load_any(path, library).scripts)
            if not scripts:
                continue  # a block: built as part of the scripts that include it
            for engine in {s.voice.engine for s in scripts} - set(versions):
                versions[engine] = engine_version(engine)
        except InvalidInput as err:
            failures.append(Failure(relative, "\n".join(str(p) for p in err.problems)))
            continue
        except GuidetrackError as err:
            failures.append(Failure(relative, str(err)))
            continue
        sources = sorted((_source_name(s, library), hashes(s)) for s in [*scripts[0].sources, *shared])
        for order, script in enumerate(scripts):
            fields = {
                "render_version": RENDER_VERSION, "guidetrack": __version__, "script": relative,
                "variant": script.variant, "sources": sources, "output": asdict(output),
                "engine": [script.voice.engine, versions[script.voice.engine]],
            }
            fingerprint = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
            name = output_name(script, library, output)
            length = to_seconds(script.duration) if script.duration else 0.0
            jobs.append(Job(name, relative, script.variant, output, fingerprint, script.title, script.sources, length,
                            settings.author, settings.title, order))
    return _without_clashes(jobs, failures)


def _without_clashes(jobs: list[Job], failures: list[Failure]) -> tuple[list[Job], list[Failure]]:
    """Two renders that would be written to one file (`wind down.yaml` and `wind-down.yaml`, or
    `breath.yaml`'s variant `short` and `breath-short.yaml`): neither is built, both are reported."""
    writers: dict[str, list[Job]] = {}
    for job in jobs:
        writers.setdefault(job.name, []).append(job)
    clashing = {name: found for name, found in writers.items() if len(found) > 1}
    for name, found in clashing.items():
        who = [f"{j.script}" + (f" (variant {j.variant})" if j.variant else "") for j in found]
        for job in found:
            failures.append(Failure(job.script, f"{' and '.join(who)} would both be written to {name}; "
                                    "rename a script or a variant so that each has a file of its own"))
    return [job for job in jobs if job.name not in clashing], failures


# ---------------------------------------------------------------- the manifest


def up_to_date(out: Path, job: Job, entry: Entry | None) -> bool:
    """Built from the same inputs, and every file it wrote is still there, whole."""
    if entry is None or entry.fingerprint != job.fingerprint:
        return False
    for file in entry.files.values():
        path = out / file.path
        try:
            found = path.stat()
        except OSError:
            return False
        if not path.is_file() or found.st_size != file.bytes:
            return False
        # unchanged since it was written (inode, size, modification time), or else the same bytes
        if file.stat != _stamp(found) and sha256_of(path) != file.sha256:
            return False
    return True


def _stamp(found: os.stat_result) -> tuple[int, int, int]:
    return (found.st_ino, found.st_size, found.st_mtime_ns)


# ---------------------------------------------------------------- rendering one job (in a worker)


def render_job(job: Job, library: str | None, files: dict[str, bytes] | None, cache_dir: str | None,
               progress: Any = None, encoders: int | None = None) -> JobResult:
    """Render one job in a temporary folder and return what it wrote, as bytes.

    With `library`, the scripts are read in place (a local worker). With `files` (a cluster
    worker, maybe on another machine), the script's sources are written out first, named as
    `_source_name` names them. Runs in a worker process: everything comes back as plain data.
    """
    from .render import render, track_of
    from .script import load
    from .sidecars import sidecar_paths

    worker = f"{socket.gethostname()}:{os.getpid()}"
    if progress is not None:
        progress.put(("start", worker, job.name))
    started = time.perf_counter()
    with temporary_folder("build") as folder:
        root = Path(folder) / "library"
        if files is not None:
            for name, data in files.items():
                target = root / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        else:
            root = Path(library or ".")
        script = load(root / job.script, job.variant or None, root)
        script = replace(script, author=script.author or job.author, album=script.album or job.album)
        audio = Path(folder) / "out" / Path(job.name).name
        rendered = render(script, audio, Path(cache_dir) if cache_dir else None, job.output, encoders=encoders)
        written = {"audio": audio, **sidecar_paths(audio)}
        track = track_of(rendered.plan, rendered.samples, job.order,
                         {"target_lufs": rendered.target_lufs, **rendered.figures.to_json()})
        result = JobResult({kind: path.read_bytes() for kind, path in written.items()}, track,
                           round(time.perf_counter() - started, 2), worker)
    if progress is not None:
        progress.put(("done", worker, job.name))
    return result


def cluster_files(job: Job, library: Path) -> dict[str, bytes]:
    """The files a cluster worker needs to render `job`: its script's sources under the library.
    What comes with guidetrack is on every worker already; anything else outside the library
    cannot be sent by name."""
    library = library.resolve()
    files = {}
    for source in job.sources:
        name = _source_name(source, library)
        if name.startswith("builtin:"):
            continue
        if Path(name).is_absolute():
            raise InvalidInput(f"{job.script}: {source} is outside the library folder; a cluster build "
                               "sends only the library's own files, so move it inside")
        files[name] = source.read_bytes()
    return files


# ---------------------------------------------------------------- the whole build


@dataclass
class Summary:
    built: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0
    # where each was rendered (host:pid): reported, not published in the manifest
    workers: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"built": self.built, "skipped": self.skipped, "removed": self.removed,
                "failed": [asdict(f) for f in self.failed], "interrupted": self.interrupted,
                "seconds": round(self.seconds, 2), "workers": self.workers}


class Reporter:
    """What the build tells the person running it; the CLI gives a live display or plain lines."""

    def planned(self, total: int, skipped: int) -> None: ...
    def started(self, worker: str, name: str) -> None: ...
    def finished(self, name: str, ok: bool, seconds: float, message: str = "") -> None: ...
    def close(self) -> None: ...


def _remove_litter(out: Path) -> None:
    """Temporary files a killed build or render left (never at an output path); a live one's are kept."""
    remove_stale_parts(out, recursive=True)


def _check_owner(manifest: Manifest, library: Path, out: Path, found: bool, force: bool) -> None:
    """A build folder belongs to one library: building another library (or an empty folder) into
    it would remove every class published there. That takes --force."""
    if force or not manifest.outputs:
        return
    if not found:
        raise InvalidInput(f"{library} has no scripts, and building it into {out} would remove the "
                           f"{len(manifest.outputs)} classes there; add --force to do that")
    if manifest.library is not None and manifest.library != _library_id(library):
        raise InvalidInput(f"{out} holds the build of another library than {library}: give another -o, "
                           "or --force to replace what is there")


def _library_id(library: Path) -> str:
    """Which library a build folder belongs to, without publishing the build machine's paths."""
    return hashlib.sha256(str(library).encode()).hexdigest()[:16]


def _remove_output(out: Path, file: StoredFile) -> None:
    """Remove a file an earlier build wrote: only inside the output folder, only a regular file,
    and only if it is still what that build wrote (its size and sha256)."""
    root = out.resolve()
    path = out / file.path
    try:
        real = path.resolve()
        if (not real.is_relative_to(root) or real == root or path.is_symlink() or not real.is_file()
                or real.stat().st_size != file.bytes or sha256_of(real) != file.sha256):
            return
        real.unlink()
    except (OSError, ValueError):
        return


def _store(out: Path, job: Job, result: JobResult, manifest: Manifest) -> None:
    """Put a render's files in place, the audio and its transcripts together (see `replacing`),
    and record them."""
    from .sidecars import sidecar_paths

    audio = out / job.name
    paths = {"audio": audio, **sidecar_paths(audio)}
    data = result.files
    with replacing(audio, beside={paths[kind]: data[kind] for kind in data if kind != "audio"}) as temp:
        temp.write_bytes(data["audio"])
    files = {kind: StoredFile(paths[kind].relative_to(out).as_posix(), len(data[kind]),
                              hashlib.sha256(data[kind]).hexdigest(), _stamp(paths[kind].stat()))
             for kind in data}
    previous = manifest.outputs.get(job.name)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    manifest.outputs[job.name] = Entry(job.fingerprint, job.script, job.variant, files, result.track, now,
                                       previous.published if previous else now, result.seconds)
    manifest.write(out)


def build(library: Path, out: Path, *, output: Output = Output(), jobs: int | None = None, force: bool = False,
          cache_dir: Path | None = None, scheduler: str | None = None, base_url: str | None = None,
          title: str | None = None, reporter: Reporter | None = None) -> Summary:
    started = time.perf_counter()
    reporter = reporter or Reporter()
    library = library.resolve()
    if not library.is_dir():
        raise InvalidInput(f"{library}: not a folder; give the library folder (default: sessions)")
    if output.format not in FORMATS:
        raise InvalidInput(f"--format {output.format}: choose one of {', '.join(FORMATS)}")
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"-o {out}: a file, not a folder; give the folder to build into")
    unwritable = check_writable(out)
    if unwritable:
        raise GuidetrackError(unwritable)
    _remove_litter(out)
    summary = Summary()
    settings = read_library(library)[0]  # InvalidInput: the build stops before anything is written
    todo, summary.failed = plan_jobs(library, output, settings=settings)
    manifest = Manifest.read(out)
    _check_owner(manifest, library, out, bool(todo or summary.failed), force)
    manifest.library = _library_id(library)
    if manifest.dropped:
        manifest.write(out)

    # outputs of scripts that are gone, or of variants no longer there, go; a script that fails
    # to load keeps its old outputs until it is fixed
    broken = {f.what for f in summary.failed}
    wanted = {job.name for job in todo}
    for name, entry in list(manifest.outputs.items()):
        if name not in wanted and entry.script not in broken:
            for file in entry.files.values():
                _remove_output(out, file)
            del manifest.outputs[name]
            summary.removed.append(name)
    if summary.removed:
        manifest.write(out)

    pending = []
    for job in todo:
        if not force and up_to_date(out, job, manifest.outputs.get(job.name)):
            summary.skipped.append(job.name)
        else:
            pending.append(job)
    reporter.planned(len(todo), len(summary.skipped))

    def length(job: Job) -> float:
        known = manifest.outputs.get(job.name)
        return job.length or (known.track.duration if known else 0.0)

    pending.sort(key=lambda job: -length(job))  # the longest first, so that the last render to finish is a short one
    if pending:
        run = _run_on_cluster if scheduler else _run_locally
        try:
            run(pending, library, out, manifest, summary, reporter, jobs=jobs, cache_dir=cache_dir,
                scheduler=scheduler)
        except KeyboardInterrupt:
            summary.interrupted = True
    reporter.close()
    if not summary.interrupted:
        from .publish import publish

        # the feed's address and the library's title are kept, so a later plain `build` keeps the feed
        # the feed's address and title given once are kept, so a later plain `build` keeps the feed;
        # library.yaml's come before remembered ones, the command line's before both
        remembered = (base_url or manifest.base_url, title or manifest.title)
        try:
            if remembered != (manifest.base_url, manifest.title):
                manifest.base_url, manifest.title = remembered
                manifest.write(out)
            publish(out, manifest, base_url=base_url or settings.base_url or manifest.base_url,
                    title=title or settings.title or manifest.title or "", settings=settings)
        except OSError as err:  # a full disk: reported with the rest; the next build publishes again
            summary.failed.append(Failure("publishing", f"cannot write {err.filename or out}: {err.strerror or err}"))
    summary.seconds = time.perf_counter() - started
    return summary


def _finish(job: Job, outcome: Callable[[], JobResult], out: Path, manifest: Manifest,
            summary: Summary, reporter: Reporter) -> None:
    try:
        result = outcome()
    except InvalidInput as err:
        message = "\n".join(str(p) for p in err.problems)
    except GuidetrackError as err:
        message = str(err)
    except Exception as err:  # noqa: BLE001 - one script's bug must not stop the others
        message = f"internal error: {type(err).__name__}: {err}\n" + "".join(traceback.format_exception(err)[-3:])
    else:
        try:
            _store(out, job, result, manifest)
        except OSError as err:  # a full disk: this class fails, its old files stay, the others go on
            message = f"cannot write {err.filename or out}: {err.strerror or err}"
        else:
            summary.built.append(job.name)
            summary.workers[job.name] = result.worker
            reporter.finished(job.name, True, result.seconds)
            return
    summary.failed.append(Failure(job.name, message))
    reporter.finished(job.name, False, 0.0, message)


def start_worker(parent: int, log_level: int) -> None:
    """Run first in each of the build's worker processes: they start as every helper does (see
    `start_helper`), and log as the build does (`guidetrack -v build`)."""
    start_helper(parent)
    free_memory_promptly()
    if log_level < logging.WARNING:
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
        logging.getLogger("guidetrack").setLevel(log_level)


def start_helper(parent: int) -> None:
    """Run first in each of the build's helper processes (its workers and its manager): they end
    with the build (see `die_with_parent`), and leave Ctrl-C to the build, which kills or shuts
    them down. The terminal sends it to the whole process group, and a helper it reached first
    printed a traceback into the build's output (the manager mid-shutdown, a worker its
    KeyboardInterrupt)."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def die_with_parent(parent: int) -> None:
    """Run first in each of the build's helper processes: when the build is killed (even by
    SIGKILL), the kernel ends them too (Linux's parent-death signal), instead of leaving them
    running, a few hundred MB each. Their speech workers and encoders then see their input close
    and end as well."""
    import ctypes
    import signal as signals

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signals.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: a killed build may leave its helpers behind
    if os.getppid() != parent:  # the build died before the signal was set
        os._exit(1)


def _run_locally(pending: list[Job], library: Path, out: Path, manifest: Manifest, summary: Summary,
                 reporter: Reporter, *, jobs: int | None, cache_dir: Path | None, scheduler: str | None) -> None:
    import multiprocessing
    import queue
    import threading
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    workers = max(1, min(jobs or os.cpu_count() or 1, len(pending)))
    context = multiprocessing.get_context("spawn")  # no threads or engines carried over from this process
    from multiprocessing.managers import SyncManager

    # Linux: a socket in the abstract namespace, not a file in $TMPDIR, whose path may be too long
    # for a Unix socket (108 bytes); it goes with the build's process
    address = f"\0guidetrack-build-{os.getpid()}-{os.urandom(6).hex()}" if sys.platform == "linux" else None
    manager = SyncManager(address=address, ctx=context)
    manager.start(start_helper, (os.getpid(),))
    with manager as sync:
        progress = sync.Queue()
        stop = threading.Event()

        def relay() -> None:
            while not stop.is_set():
                try:
                    kind, worker, name = progress.get(timeout=0.1)
                except queue.Empty:
                    continue
                except (EOFError, OSError):
                    return
                if kind == "start":
                    reporter.started(worker, name)

        listener = threading.Thread(target=relay, daemon=True)
        listener.start()
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=start_worker,
                                   initargs=(os.getpid(), logging.getLogger("guidetrack").getEffectiveLevel()))
        # Ctrl-C (or a polite kill) is noted and acted on here, between two looks at the renders,
        # rather than raised wherever this thread happens to be: inside a callback that frees a
        # proxy of the manager's, it was swallowed, with a traceback ("Exception ignored in")
        interrupted = threading.Event()
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {s: signal.getsignal(s) for s in handled} if threading.current_thread() is threading.main_thread() else {}
        for signum in previous:
            signal.signal(signum, lambda signum, frame: interrupted.set())
        try:
            encoders = max(1, cores() // workers)  # the workers share the cores: no more encoders than there are
            futures = {pool.submit(render_job, job, str(library), None, str(cache_dir) if cache_dir else None,
                                   progress, encoders): job for job in pending}
            while futures:
                done, _ = wait(futures, timeout=0.1, return_when=FIRST_COMPLETED)
                if interrupted.is_set():
                    raise KeyboardInterrupt
                for future in done:
                    _finish(futures.pop(future), future.result, out, manifest, summary, reporter)
            if interrupted.is_set():
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()  # a render in progress is thrown away; nothing of it is at an output path
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            listener.join(timeout=1)


def _run_on_cluster(pending: list[Job], library: Path, out: Path, manifest: Manifest, summary: Summary,
                    reporter: Reporter, *, jobs: int | None, cache_dir: Path | None, scheduler: str | None) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise GuidetrackError("--scheduler needs Dask's distributed: install the cluster extra "
                              "(.venv/bin/pip install -e '.[cluster]' or pip install 'guidetrack[cluster]')") from None
    try:
        client = Client(scheduler, timeout="20s")
    except (OSError, TimeoutError) as err:
        raise GuidetrackError(f"cannot reach the Dask scheduler at {scheduler}: {err}") from None
    try:
        futures = {}
        for job in pending:
            try:
                files = cluster_files(job, library)
            except InvalidInput as err:
                summary.failed.append(Failure(job.name, "\n".join(str(p) for p in err.problems)))
                continue
            # each worker keeps its own clip cache (its GUIDETRACK_CACHE_DIR or the user cache)
            future = client.submit(render_job, job, None, files, None, pure=False, key=f"render-{job.name}-{job.fingerprint[:12]}")
            futures[future] = job
            reporter.started(scheduler or "cluster", job.name)
        for future in as_completed(list(futures)):
            _finish(futures[future], future.result, out, manifest, summary, reporter)
    except KeyboardInterrupt:
        client.cancel(list(futures))
        raise
    finally:
        client.close()
