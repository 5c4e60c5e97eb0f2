"""The worker side of engines/worker.py's protocol, for the Piper and hibari workers (the pyttsx3
worker forks a child per utterance, and answers its own way)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


def serve(version: str, speak: Callable[[dict], None], at_once: int = 1) -> None:
    """Answer each JSON request line on stdin with one line repeating its "id": `{"hello": true}`
    with `version`; any other request is handed to `speak`, which writes its WAV file, and is
    answered `{"ok": true}`, or `{"error": ...}` when it raised. Up to `at_once` requests are
    spoken at once, each on a thread of its own (for an engine whose work lets go of the GIL),
    and answered as each is done: the parent matches answers to requests by their ids."""
    writing = threading.Lock()

    def answer(request: dict) -> None:
        try:
            if not request.get("hello"):
                speak(request)
            said = {"ok": True, **({"version": version} if request.get("hello") else {})}
        except Exception as err:  # noqa: BLE001 - everything is reported to the parent
            said = {"error": f"{type(err).__name__}: {err}"[:4000]}
        with writing:
            sys.stdout.write(json.dumps({"id": request.get("id"), **said}) + "\n")
            sys.stdout.flush()

    with ThreadPoolExecutor(max_workers=max(1, at_once), thread_name_prefix="speak") as pool:
        for line in sys.stdin:
            if not line.strip():
                continue
            request = json.loads(line)
            if at_once > 1 and not request.get("hello"):
                pool.submit(answer, request)
            else:
                answer(request)
