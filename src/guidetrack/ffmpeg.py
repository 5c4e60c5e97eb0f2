"""Running ffmpeg: every process guidetrack starts from it is started here.

- `run`: float PCM fed through a pipeline of processes (the meter, the encoder);
- `decode_into`: a whole audio file decoded into a file (`decoded`);
- `read_pcm`: a file's float PCM read as it is decoded (measuring a finished file);
- `Feed`: one process fed bytes as they are made, its output read as it comes (measuring an MP3
  while it is written).

One place for the pipes, the threads that drain each process's stderr, the timeouts, the one
"ffmpeg is not installed" error, and the error that names the failing command and what it said.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import IO, Any

import numpy as np

from .errors import EncodeError, MissingTool

log = logging.getLogger(__name__)

PIPE_BYTES = 1 << 20  # 1 MiB, the default Linux maximum: ~3 s of float PCM
WRITE_FAILURES = ("Error writing trailer", "Error closing file", "av_interleaved_write_frame()")
TIMEOUT = 6 * 3600  # s: an ffmpeg that has not finished by then, over any file, has hung


def ffmpeg_path() -> str:
    found = shutil.which("ffmpeg")
    if not found:
        raise MissingTool("ffmpeg is not installed: apt-get install ffmpeg (scripts/guidetrack does it for you)")
    return found


def decode_into(command: list[str], store: IO[bytes]) -> tuple[int, list[str]]:
    """Run an ffmpeg `command` that writes to its stdout into the open file `store`: (exit
    code, the non-empty lines it said). A write failure it exits 0 for counts as a failure."""
    log.debug("running %s", " ".join(command))
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=store, stderr=subprocess.PIPE,
                              timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise EncodeError("ffmpeg did not finish decoding", command) from None
    said = [line.strip() for line in done.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    unwritten = any(any(f in line for f in WRITE_FAILURES) for line in said)
    return done.returncode or (1 if unwritten else 0), said


def read_pcm(command: list[str], block_bytes: int) -> Generator[bytes, None, None]:
    """What an ffmpeg `command` writes to its stdout, in blocks of about `block_bytes`; the
    process is ended when the reader stops early, and killed after TIMEOUT."""
    log.debug("running %s", " ".join(command))
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    _widen_pipe(process.stdout)
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    hung: list[bool] = []

    def kill() -> None:
        hung.append(True)
        process.kill()

    watchdog = threading.Timer(TIMEOUT, kill)
    watchdog.daemon = True
    watchdog.start()
    finished = False
    try:
        while data := process.stdout.read(block_bytes):
            yield data
        finished = True  # read to its end, rather than left early by the reader
    finally:
        watchdog.cancel()
        process.stdout.close()
        if not finished and process.poll() is None:  # left early: no need to decode the rest
            process.kill()
        process.wait()
        reader.join()
    if hung:
        raise EncodeError("ffmpeg did not finish decoding", command)
    if finished and process.returncode != 0:
        said = errors[0].decode("utf-8", "replace") if errors else ""
        raise EncodeError(f"ffmpeg failed with exit code {process.returncode}", command, said)


def _keep(stream: IO[bytes]) -> str:
    return stream.read().decode("utf-8", "replace")


def run(commands: Sequence[list[str]], blocks: Iterable[np.ndarray] | None = None, *,
        read_last: Callable[[IO[bytes]], Any] = _keep, what: str = "ffmpeg") -> tuple[int, Any]:
    """Run ffmpeg processes, each feeding the next, with float32 `blocks` fed to the first (or
    nothing, when it reads a file). Every stderr is drained as it is written; the last one's by
    `read_last`, whose result is returned with the samples fed. Raises EncodeError naming the
    last process that failed (the ones before it fail writing to its closed pipe)."""
    for command in commands:
        log.debug("running %s", " ".join(command))
    processes: list[subprocess.Popen[bytes]] = []
    said: list[list[Any]] = []
    readers: list[threading.Thread] = []
    written = 0
    try:
        for index, command in enumerate(commands):
            source = processes[-1].stdout if processes else subprocess.PIPE if blocks is not None else subprocess.DEVNULL
            last = index == len(commands) - 1
            process = subprocess.Popen(command, stdin=source, stderr=subprocess.PIPE,
                                       stdout=subprocess.DEVNULL if last else subprocess.PIPE)
            if processes and processes[-1].stdout is not None:
                processes[-1].stdout.close()  # the next process holds it now
            processes.append(process)
            found: list[Any] = []
            said.append(found)
            read = read_last if last else _keep
            reader = threading.Thread(target=lambda p=process, f=found, r=read: f.append(r(p.stderr)), daemon=True)
            reader.start()
            readers.append(reader)
        first = processes[0]
        if blocks is not None and first.stdin is not None:
            _widen_pipe(first.stdin)
            try:
                for block in blocks:
                    first.stdin.write(np.ascontiguousarray(block, dtype="<f4").data.cast("B"))  # no copy
                    written += len(block)
                first.stdin.close()
            except BrokenPipeError:
                pass
        codes = _wait(processes, readers)
    except subprocess.TimeoutExpired:
        raise EncodeError(f"{what} did not finish", commands[-1]) from None
    finally:
        if processes and processes[0].stdin is not None:
            with contextlib.suppress(OSError):
                processes[0].stdin.close()
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for reader in readers:
            reader.join()
    for command, code, found in reversed(list(zip(commands, codes, said, strict=True))):
        if code != 0:
            report = found[0] if found else ""
            raise EncodeError(f"{what} failed with exit code {code}", command,
                              report if isinstance(report, str) else getattr(report, "text", ""))
    if not said[-1]:
        raise EncodeError(f"{what}'s report could not be read", commands[-1])
    # ffmpeg exits 0 when it cannot write its output's end (a full disk): what it said tells
    report = said[-1][0]
    for line in (report if isinstance(report, str) else getattr(report, "text", "")).splitlines():
        if any(failure in line for failure in WRITE_FAILURES):  # ffmpeg 6 prefixes "[out#0/mp3 @ 0x...]"
            raise EncodeError(f"{what} could not write its output: {line.strip()}")
    return written, report


class Feed:
    """One ffmpeg `command` reading what `write` gives it on stdin; its stdout read by `output`,
    its stderr by `read_last` (whose result `finish` returns)."""

    def __init__(self, command: list[str], read_last: Callable[[IO[bytes]], Any] = _keep, what: str = "ffmpeg"):
        log.debug("running %s", " ".join(command))
        self.command, self.what = command, what
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.process.stdin is not None and self.process.stdout is not None
        _widen_pipe(self.process.stdin)
        _widen_pipe(self.process.stdout)
        self.said: list[Any] = []
        stderr = self.process.stderr
        assert stderr is not None
        self.reader = threading.Thread(target=lambda: self.said.append(read_last(stderr)), daemon=True)
        self.reader.start()

    def write(self, data: bytes) -> None:
        try:
            self.process.stdin.write(data)  # type: ignore[union-attr]
        except (BrokenPipeError, ValueError):
            raise EncodeError(f"{self.what} stopped reading", self.command, self._report_text()) from None

    def output(self, block_bytes: int) -> Iterator[bytes]:
        """What the process writes, in blocks of about `block_bytes`, to its end."""
        while data := self.process.stdout.read(block_bytes):  # type: ignore[union-attr]
            yield data

    def finish(self) -> Any:
        """Close its input and wait for it; raises EncodeError if it failed."""
        with contextlib.suppress(OSError):
            self.process.stdin.close()  # type: ignore[union-attr]
        try:
            code = _wait([self.process], [self.reader])[0]
        except subprocess.TimeoutExpired:
            self.kill()
            raise EncodeError(f"{self.what} did not finish", self.command) from None
        if code != 0 or not self.said:
            raise EncodeError(f"{self.what} failed with exit code {code}", self.command, self._report_text())
        return self.said[0]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        with contextlib.suppress(OSError):
            self.process.stdin.close()  # type: ignore[union-attr]
        self.process.stdout.close()  # type: ignore[union-attr]
        self.reader.join()

    def _report_text(self) -> str:
        report = self.said[0] if self.said else ""
        return report if isinstance(report, str) else getattr(report, "text", "")


def _wait(processes: list[subprocess.Popen[bytes]], readers: list[threading.Thread]) -> list[int]:
    """The exit codes, TIMEOUT at most from now. Each process's stderr ends when it exits, so the
    thread draining it is joined first: Popen.wait with a timeout polls, sleeping up to 50 ms
    between looks, which a render of twenty chunks would wait through twenty times."""
    deadline = time.monotonic() + TIMEOUT
    for process, reader in zip(processes, readers, strict=True):
        reader.join(max(0.0, deadline - time.monotonic()))
        if reader.is_alive():
            raise subprocess.TimeoutExpired(process.args, TIMEOUT)
    return [process.wait(timeout=max(0.0, deadline - time.monotonic())) for process in processes]


def _widen_pipe(stream) -> None:
    """A pipe of PIPE_BYTES (Linux; elsewhere a no-op): the mix runs a block or two ahead of the
    encoder, and decoded audio comes back in fewer, bigger pieces (a render's measurement,
    212 MB of them for ten minutes, switched threads and processes a quarter less often)."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except (ImportError, OSError):
        pass
