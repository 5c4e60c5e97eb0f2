"""The pyttsx3 worker: a small process that speaks each utterance in a fresh fork.

For every request it forks a child that starts pyttsx3, speaks exactly one
utterance (`save_to_file` + `runAndWait`) and exits. So each utterance starts
from the same engine state: espeak-ng otherwise carries state (its flutter and
phase counters) from one utterance to the next, so the same text would sound
slightly different depending on what was said before, and the clip cache would
depend on render order. The worker itself never starts espeak-ng (its retrieval
mode runs a thread, which a fork would not carry); it only has it read its list of
voices, which every child inherits (see `_list_voices`). A child that hangs or crashes
is killed without harming the worker.

Protocol: one JSON object a line, each with an "id" that its answer repeats
(answers come in the order children finish; up to JOBS, the first argument, run
at once). A request is `{"text", "path", "voice", "rate", "volume", "timeout"}`
(answered `{"ok": true}`) or `{"voices": true}` (answered `{"voices": [...]}`);
a failure is `{"error": ...}`.
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


ESPEAK_PHONEMES = 0x100  # espeak-ng's espeakPHONEMES: read [[...]] in the text as phonemes


def _allow_phonemes() -> None:
    """pyttsx3 calls espeak-ng's Synth without espeakPHONEMES, so a lexicon's [[...]] phonemes
    would be read out bracket by bracket; add the flag to every call."""
    from pyttsx3.drivers import _espeak

    synth = _espeak.Synth

    def with_phonemes(*args, flags=0, **kwargs):
        return synth(*args, flags=flags | ESPEAK_PHONEMES, **kwargs)

    _espeak.Synth = with_phonemes


def _speak(engine, request: dict) -> dict:
    driver = engine.proxy._driver
    espeak = type(driver).__module__.endswith(".espeak")
    if espeak:
        # espeak-ng runs its commands on a thread of its own, and the voice is loaded on ours:
        # now and then the volume set just after a voice change was lost, and a clip came out
        # 1 dB louder. So set the voice, wait for espeak-ng to settle, then rate and volume,
        # and wait again, before the text is queued.
        from pyttsx3.drivers import _espeak

        driver.setProperty("voice", request["voice"])
        _espeak.Synchronize()
        driver.setProperty("rate", request["rate"])
        driver.setProperty("volume", request["volume"])
        if request.get("pitch") is not None:
            driver.setProperty("pitch", request["pitch"])
        _espeak.Synchronize()
    else:
        engine.setProperty("voice", request["voice"])
        engine.setProperty("rate", request["rate"])
        engine.setProperty("volume", request["volume"])
    engine.save_to_file(request["text"], request["path"])
    engine.runAndWait()
    if espeak:
        # pyttsx3's espeak driver leaves its loop as soon as the queued endLoop is pumped, while
        # espeak-ng may still be speaking on its own thread (long text, a busy machine): wait for it,
        # or the file is written after we look for it, or never.
        _espeak.Synchronize()
    if not os.path.exists(request["path"]) or os.path.getsize(request["path"]) <= 44:
        return {"error": "the engine finished without writing audio"}
    return {"ok": True}


def _start_child(request: dict) -> tuple[int, int]:
    """Fork a child that answers `request` on a pipe; returns (pid, read end)."""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(reader)
        try:
            import pyttsx3

            with contextlib.redirect_stdout(io.StringIO()):  # the espeak driver prints "Audio saved"
                if sys.platform.startswith("linux"):
                    _allow_phonemes()
                engine = pyttsx3.init()
                answer = (_voices if request.get("voices") else _speak)(engine, request)
        except BaseException as err:  # noqa: BLE001 - everything is reported to the parent
            answer = {"error": f"{type(err).__name__}: {err}"[:4000]}
        os.write(writer, json.dumps(answer).encode())
        os._exit(0)
    os.close(writer)
    return child, reader


def _finish(pid: int, message: bytes) -> dict:
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return {"error": f"the engine crashed (signal {os.WTERMSIG(status)})"}
    try:
        return json.loads(message)
    except ValueError:
        return {"error": f"the engine exited without an answer (exit code {os.WEXITSTATUS(status)})"}


def _list_voices() -> list[dict]:
    """Have espeak-ng read its voices' list once, here, for every child to inherit. Setting a
    voice by name reads the list first, unless the name is a voice file's path, which it never
    is (espeak-ng lowers the name's case, and its files are named like gmw/en-US): that is
    every voice file opened and read again, in every child. Reading the list starts nothing
    (no thread, no sound state): it only needs espeak-ng's data folder found. The voices are
    returned as a child's pyttsx3 names them (`_voices`), so that this process can answer for them."""
    from pyttsx3.drivers import _espeak

    _espeak.dll.espeak_ng_InitializePath(None)
    return [{"id": voice.identifier.decode("utf-8").lower(), "name": voice.name.decode("utf-8")}
            for voice in _espeak.ListVoices(None)]


def main() -> None:
    import pyttsx3  # noqa: F401 - imported once here, so each child only starts its engine

    voices: list[dict] | None = None  # espeak-ng's, when this process could read them

    if sys.platform.startswith("linux"):
        # the espeak-ng driver too, which loads libespeak-ng (23 ms a child otherwise, most of
        # what an utterance costs); loading it starts nothing: each child still initialises
        # espeak-ng itself, from the same state
        with contextlib.suppress(Exception):  # a child reports what is wrong, for its request
            import pyttsx3.drivers.espeak  # noqa: F401

            voices = _list_voices()

    jobs = max(1, int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    waiting: list[dict] = []
    running: dict[int, dict] = {}  # read end -> {pid, id, deadline, message, timeout}
    pending = b""
    stdin_open = True

    def answer(request_id, body: dict) -> None:
        sys.stdout.write(json.dumps({"id": request_id, **body}) + "\n")
        sys.stdout.flush()

    while stdin_open or waiting or running:
        while waiting and len(running) < jobs:
            request = waiting.pop(0)
            pid, reader = _start_child(request)
            timeout = float(request.get("timeout", 30))
            running[reader] = {"pid": pid, "id": request.get("id"), "message": b"",
                               "deadline": time.monotonic() + timeout, "timeout": timeout}
        now = time.monotonic()
        wait = min((job["deadline"] for job in running.values()), default=now + 3600) - now
        ready, _, _ = select.select(([0] if stdin_open else []) + list(running), [], [], max(wait, 0))
        for fd in ready:
            if fd == 0:
                chunk = os.read(0, 65536)
                if not chunk:
                    stdin_open = False
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in filter(bytes.strip, lines):
                    request = json.loads(line)
                    if request.get("voices") and voices is not None:  # known here: no child to start
                        answer(request.get("id"), {"voices": voices})
                    else:
                        waiting.append(request)
                continue
            job = running[fd]
            chunk = os.read(fd, 65536)
            if chunk:
                job["message"] += chunk
                continue
            os.close(fd)
            del running[fd]
            answer(job["id"], _finish(job["pid"], job["message"]))
        now = time.monotonic()
        for fd, job in list(running.items()):
            if now >= job["deadline"]:
                os.kill(job["pid"], signal.SIGKILL)
                os.waitpid(job["pid"], 0)
                os.close(fd)
                del running[fd]
                answer(job["id"], {"error": f"timed out after {job['timeout']:.1f} s"})


if __name__ == "__main__":
    main()
