"""The pyttsx3 worker: a small process that speaks each utterance in a fresh fork.

For every request it forks a child that starts pyttsx3, speaks exactly one
utterance (`save_to_file` + `runAndWait`) and exits. So each utterance starts
from the same engine state: espeak-ng otherwise carries state (its flutter and
phase counters) from one utterance to the next, so the same text would sound
slightly different depending on what was said before, and the clip cache would
depend on render order. The worker itself never starts espeak-ng (its retrieval
mode runs a thread, which a fork would not carry). A child that hangs or crashes
is killed without harming the worker.

Protocol: one JSON object a line. Each request is `{"text", "path", "voice",
"rate", "volume", "timeout"}` (answered `{"ok": true}`) or `{"voices": true}`
(answered `{"voices": [{"id", "name"}...]}`); a failure is `{"error": ...}`.
Only the standard library and pyttsx3 are imported here.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import sys
import time


def _voices(engine, request: dict) -> dict:
    return {"voices": [{"id": v.id, "name": str(v.name)} for v in engine.getProperty("voices")]}


def _speak(engine, request: dict) -> dict:
    engine.setProperty("voice", request["voice"])
    engine.setProperty("rate", request["rate"])
    engine.setProperty("volume", request["volume"])
    engine.save_to_file(request["text"], request["path"])
    engine.runAndWait()
    # pyttsx3's espeak driver sometimes ends its loop without writing the file
    if not os.path.exists(request["path"]) or os.path.getsize(request["path"]) <= 44:
        return {"error": "the engine finished without writing audio"}
    return {"ok": True}


def _serve_one(request: dict) -> dict:
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child: speak once, report, exit without cleanup
        os.close(reader)
        try:
            import pyttsx3

            with contextlib.redirect_stdout(io.StringIO()):  # the espeak driver prints "Audio saved"
                engine = pyttsx3.init()
                answer = (_voices if request.get("voices") else _speak)(engine, request)
        except BaseException as err:  # noqa: BLE001 - everything is reported to the parent
            answer = {"error": f"{type(err).__name__}: {err}"[:4000]}
        os.write(writer, json.dumps(answer).encode())
        os._exit(0)
    os.close(writer)
    deadline = time.monotonic() + float(request.get("timeout", 30))
    message = b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
                return {"error": f"timed out after {request.get('timeout', 30)} s"}
            ready, _, _ = select.select([reader], [], [], left)
            if ready:
                chunk = os.read(reader, 4096)
                if not chunk:
                    break
                message += chunk
        _, status = os.waitpid(child, 0)
    finally:
        os.close(reader)
    if os.WIFSIGNALED(status):
        return {"error": f"the engine crashed (signal {os.WTERMSIG(status)})"}
    try:
        return json.loads(message)
    except ValueError:
        return {"error": f"the engine exited without an answer (exit code {os.WEXITSTATUS(status)})"}


def main() -> None:
    for line in sys.stdin:
        if line.strip():
            sys.stdout.write(json.dumps(_serve_one(json.loads(line))) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
