"""An engine that speaks in a worker process it can kill and restart.

The worker reads one JSON request a line on stdin and answers each with a line
that repeats its "id". A request that gets no answer within its timeout (a hang)
or a worker that dies (a crash) ends that worker; every unanswered request is
tried once more on a fresh worker, then the first that still fails is reported
by its text. So one bad utterance can never hang or kill a render.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ..errors import EngineError
from ..voice import VoiceSpec

log = logging.getLogger(__name__)
STDERR_TAIL = 2000  # characters of a dead worker's stderr put in the error
START_TIMEOUT = 30.0  # seconds for a worker to start its engine and answer the first request
GRACE = 5.0  # seconds on top of a request's own timeout before the worker counts as hung


class _Answered(Exception):
    """What the caller's `answered` raised, carried past the handling of the worker's failures."""

    def __init__(self, error: BaseException):
        super().__init__(error)
        self.error = error


class WorkerEngine:
    name = "engine"
    version = ""
    worker_module = ""  # run as `python -m worker_module`
    install_hint = ""

    def __init__(self) -> None:
        # where the worker may keep what it prepares once and reads back faster on every start
        # (hibari's spelling rules); set by whoever starts it, beside the clips it speaks
        self.keep_in: Path | None = None
        self._worker: subprocess.Popen[str] | None = None
        self._stderr: IO[bytes] | None = None  # what the worker says on stderr: its log, read when it fails
        self.restarts = 0

    # -------------------------------------------------------- what each engine says

    def worker_command(self) -> list[str]:
        """How Python is told to run the worker: its module by default."""
        return ["-m", self.worker_module]

    def worker_args(self) -> list[str]:
        return []

    def hello(self) -> dict:
        """The first request, sent when a worker starts; its answer goes to `started`."""
        return {"hello": True}

    def started(self, answer: dict) -> None:
        pass

    def request(self, text: str, path: Path, voice: VoiceSpec) -> dict:
        raise NotImplementedError

    def timeout(self, text: str) -> float:
        raise NotImplementedError

    def voice_key(self, voice: VoiceSpec) -> str:
        """What names the voice in the clip cache; engines whose sound depends on more say so."""
        return voice.voice

    def voice_ids(self) -> list[str]:
        """Every voice the engine can speak with here."""
        raise NotImplementedError

    # -------------------------------------------------------- the worker

    def _start(self) -> None:
        self.close()
        self._stderr = tempfile.TemporaryFile(prefix=f"guidetrack-{self.name}-worker-")  # unnamed: nothing to clean
        command = [sys.executable, *self.worker_command(), *self.worker_args()]
        log.debug("starting the %s worker: %s", self.name, " ".join(command))
        self._worker = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1,
        )
        hello = self._ask([{**self.hello(), "timeout": START_TIMEOUT}])[0]
        if "error" in hello:
            self.close()
            raise EngineError(f"{self.name} could not start ({hello['error']}); {self.install_hint}")
        self.started(hello)

    def ensure_started(self) -> None:
        if self._worker is None or self._worker.poll() is not None:
            self._start()

    def _ask(self, requests: list[dict], answered: Callable[[int, dict], None] | None = None) -> list[dict]:
        """Send requests to the worker; their answers in the same order, each also handed to
        `answered` (with the request's index) as soon as it comes. The requests are written as
        the worker takes them, while its answers are read, so that neither waits on the other's
        full pipe however many there are. The worker is given each request's timeout (plus
        GRACE) from its last answer; past that it counts as hung. If `answered` raises, the
        worker is stopped (its other answers would meet the next requests) and the error raised."""
        assert self._worker is not None and self._worker.stdin is not None and self._worker.stdout is not None
        answers: dict[int, dict] = {}
        patience = max(r["timeout"] for r in requests) + GRACE
        try:
            self._worker.stdin.flush()  # nothing of ours is left in its buffer: the pipe is written directly
            payload = memoryview("".join(json.dumps({**r, "id": i}) + "\n" for i, r in enumerate(requests)).encode())
            sent = 0
            deadline = time.monotonic() + patience
            pending = b""  # read the pipe ourselves: a buffered readline would hide lines from select
            fd, to = self._worker.stdout.fileno(), self._worker.stdin.fileno()
            closed = False  # the worker closed its end: it died (a hang keeps it open)
            while len(answers) < len(requests):
                if b"\n" not in pending:
                    writing = [to] if sent < len(payload) else []
                    readable, writable, _ = select.select([fd], writing, [], max(deadline - time.monotonic(), 0))
                    if writable:  # room for PIPE_BUF bytes at least: a write that size never waits
                        sent += os.write(to, payload[sent: sent + select.PIPE_BUF])
                    if readable:
                        chunk = os.read(fd, 65536)
                        closed = not chunk
                        if closed:
                            break
                        pending += chunk
                    elif not writable:
                        break  # no answer in time
                    continue
                line, pending = pending.split(b"\n", 1)
                answer = json.loads(line)
                index = answer.pop("id")
                answers[index] = answer
                deadline = time.monotonic() + patience
                if answered is not None:
                    try:
                        answered(index, answer)
                    except BaseException as err:  # the caller's own failure, not the worker's
                        raise _Answered(err) from err
        except _Answered as stop:
            self.close()
            raise stop.error from None
        except (BrokenPipeError, OSError, ValueError) as err:
            said = self._said()
            self.close()
            failed = f"the worker failed ({err})" + (f"; it said: {said}" if said else "")
            log.info("the %s worker: %s", self.name, failed)
            return [answers.get(i, {"error": failed}) for i in range(len(requests))]
        if len(answers) < len(requests):
            dead = closed or self._worker.poll() is not None
            said = self._said()
            self.close()  # hung or dead: the next call starts a new worker
            gone = "the worker crashed" if dead else f"timed out (no answer in {patience:.1f} s)"
            if said:
                gone += f"; it said: {said}"
            log.info("the %s worker %s", self.name, gone)
            return [answers.get(i, {"error": gone}) for i in range(len(requests))]
        return [answers[i] for i in range(len(requests))]

    def _said(self) -> str:
        """The end of what the worker wrote on stderr."""
        if self._stderr is None:
            return ""
        try:
            size = self._stderr.seek(0, os.SEEK_END)
            self._stderr.seek(max(0, size - STDERR_TAIL))
            text = self._stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        return " ".join(line.strip() for line in text.splitlines()[-8:] if line.strip())

    def close(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._worker is not None:
            self._worker.kill()
            self._worker.wait()
            for stream in (self._worker.stdin, self._worker.stdout):
                if stream:
                    stream.close()
            self._worker = None

    def __del__(self) -> None:
        self.close()

    # -------------------------------------------------------- speaking

    def synthesize(self, text: str, voice: VoiceSpec, path: Path) -> None:
        self.synthesize_many([(text, path)], voice)

    def synthesize_many(self, items: list[tuple[str, Path]], voice: VoiceSpec,
                        spoken: Callable[[int], None] | None = None) -> None:
        """Speak each (text, path), `spoken` told each item's index as soon as its file is
        written; each failure is retried once on a fresh worker, then reported."""
        todo = list(enumerate(items))
        failures: dict[str, str] = {}
        for attempt in range(2):
            if not todo:
                return
            if self._worker is None or self._worker.poll() is not None:
                if attempt:
                    self.restarts += 1
                self._start()
            asked = todo

            def answered(index: int, answer: dict, asked: list[tuple[int, tuple[str, Path]]] = asked) -> None:
                if spoken is not None and answer.get("ok"):
                    spoken(asked[index][0])

            requests = [{**self.request(text, path, voice), "timeout": self.timeout(text)} for _, (text, path) in asked]
            answers = self._ask(requests, answered)
            failures = {text: a["error"] for (_, (text, _)), a in zip(asked, answers, strict=True) if not a.get("ok")}
            todo = [(i, (text, path)) for i, (text, path) in asked if text in failures]
        if failures:
            text, error = next(iter(failures.items()))
            raise EngineError(f"{self.name} could not speak {text!r}: {error} (tried twice)")
