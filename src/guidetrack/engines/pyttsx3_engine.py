"""pyttsx3: espeak-ng on Linux, the system voices on macOS and Windows.

Speech runs in a worker process (see pyttsx3_worker) that speaks each
utterance in a fresh fork with its own single pyttsx3 engine: one `save_to_file` +
`runAndWait` per utterance (pyttsx3 2.99 keeps only the last of several queued
saves), the same engine state for every utterance, and a timeout, one retry
with a restarted worker, then a clear error naming the text.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from functools import lru_cache
from importlib.metadata import version as package_version
from pathlib import Path

from ..errors import EngineError, InvalidInput
from ..script import VoiceSpec

INSTALL_HINT = "install espeak-ng (Debian: apt-get install espeak-ng; scripts/guidetrack does it for you)"
START_TIMEOUT = 20.0  # seconds for the worker to start its engine
BASE_TIMEOUT = 20.0  # seconds allowed for any utterance, plus PER_CHAR_TIMEOUT a character
PER_CHAR_TIMEOUT = 0.05


def _driver_name() -> str:
    # the same choice pyttsx3.init() makes
    return {"darwin": "nsss", "win32": "sapi5"}.get(sys.platform, "espeak")


def engine_version() -> str:
    """pyttsx3's version and its driver's, without starting a worker."""
    driver = _driver_name()
    detail = "system"
    if driver == "espeak":
        try:
            from pyttsx3.drivers import _espeak

            detail = _espeak.Info().decode()
        except Exception as err:  # the library is missing or broken
            raise EngineError(f"pyttsx3 cannot load espeak-ng ({err}); {INSTALL_HINT}") from None
    return f"pyttsx3-{package_version('pyttsx3')}/{driver}-{detail}"


class Pyttsx3Engine:
    name = "pyttsx3"

    def __init__(self) -> None:
        self.version = engine_version()
        self._worker: subprocess.Popen | None = None
        self._voices: dict[str, str] = {}
        self.restarts = 0

    # ------------------------------------------------------------ the worker

    def _start(self) -> None:
        self.close()
        jobs = 2 * (os.cpu_count() or 1)  # children mostly wait on espeak-ng, so two a core
        self._worker = subprocess.Popen(
            [sys.executable, "-m", "guidetrack.engines.pyttsx3_worker", str(jobs)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
        )
        hello = self._ask([{"voices": True, "timeout": START_TIMEOUT}], START_TIMEOUT + 5.0)[0]
        if "error" in hello:
            self.close()
            raise EngineError(f"pyttsx3 could not start a speech driver ({hello['error']}); {INSTALL_HINT}")
        self._voices = {v["id"]: v["name"] for v in hello["voices"]}

    def _ask(self, requests: list[dict], timeout: float) -> list[dict]:
        """Send requests to the worker; their answers in the same order."""
        assert self._worker is not None and self._worker.stdin is not None and self._worker.stdout is not None
        answers: dict[int, dict] = {}
        try:
            self._worker.stdin.write("".join(json.dumps({**r, "id": i}) + "\n" for i, r in enumerate(requests)))
            self._worker.stdin.flush()
            deadline = time.monotonic() + timeout
            pending = b""  # read the pipe ourselves: a buffered readline would hide lines from select
            fd = self._worker.stdout.fileno()
            while len(answers) < len(requests):
                while b"\n" not in pending:
                    ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
                    chunk = os.read(fd, 65536) if ready else b""
                    if not chunk:
                        break
                    pending += chunk
                if b"\n" not in pending:
                    break
                line, pending = pending.split(b"\n", 1)
                answer = json.loads(line)
                answers[answer.pop("id")] = answer
        except (BrokenPipeError, OSError, ValueError) as err:
            self.close()
            return [answers.get(i, {"error": f"the worker failed ({err})"}) for i in range(len(requests))]
        if len(answers) < len(requests):
            self.close()  # hung or dead: the next call starts a new worker
        return [answers.get(i, {"error": "the worker stopped answering"}) for i in range(len(requests))]

    def close(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self._worker.wait()
            for stream in (self._worker.stdin, self._worker.stdout):
                if stream:
                    stream.close()
            self._worker = None

    def __del__(self) -> None:
        self.close()

    def voice_ids(self) -> list[str]:
        if self._worker is None:
            self._start()
        return sorted(self._voices)

    def _resolve_voice(self, wanted: str) -> str:
        if wanted in self._voices:
            return wanted
        lowered = wanted.lower()
        for voice_id, name in self._voices.items():
            if lowered in (voice_id.lower().rsplit("/", 1)[-1], name.lower()):
                return voice_id
        raise InvalidInput(
            f"the voice '{wanted}' is not installed for pyttsx3; try en-us, en-gb or one of: "
            + ", ".join(v.rsplit("/", 1)[-1] for v in sorted(self._voices)[:40])
        )

    # ------------------------------------------------------------ speaking

    def synthesize(self, text: str, voice: VoiceSpec, path: Path) -> None:
        self.synthesize_many([(text, path)], voice)

    def synthesize_many(self, items: list[tuple[str, Path]], voice: VoiceSpec) -> None:
        """Speak each (text, path), several at once; each failure is retried once, then reported."""
        todo = list(items)
        failures: dict[str, str] = {}
        for attempt in range(2):
            if not todo:
                return
            if self._worker is None or self._worker.poll() is not None:
                if attempt:
                    self.restarts += 1
                self._start()
            voice_id = self._resolve_voice(voice.voice)
            requests = [{"text": text, "path": str(path), "voice": voice_id, "rate": voice.rate,
                         "volume": voice.volume, "pitch": voice.pitch, "timeout": BASE_TIMEOUT + PER_CHAR_TIMEOUT * len(text)}
                        for text, path in todo]
            budget = sum(r["timeout"] for r in requests) + 5.0
            answers = self._ask(requests, budget)
            failures = {text: a["error"] for (text, _), a in zip(todo, answers) if not a.get("ok")}
            todo = [(text, path) for text, path in todo if text in failures]
        if failures:
            text, error = next(iter(failures.items()))
            raise EngineError(f"pyttsx3 could not speak {text!r}: {error} (tried twice)")


@lru_cache(maxsize=1)
def shared_engine() -> Pyttsx3Engine:
    return Pyttsx3Engine()
