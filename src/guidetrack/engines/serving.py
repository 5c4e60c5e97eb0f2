"""The worker side of engines/worker.py's protocol, for the Piper and hibari workers, which speak
one request at a time (the pyttsx3 worker forks a child per utterance, and answers its own way)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable


def serve(version: str, speak: Callable[[dict], None]) -> None:
    """Answer each JSON request line on stdin with one line repeating its "id": `{"hello": true}`
    with `version`; any other request is handed to `speak`, which writes its WAV file, and is
    answered `{"ok": true}`, or `{"error": ...}` when it raised."""
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            if not request.get("hello"):
                speak(request)
            answer = {"ok": True, **({"version": version} if request.get("hello") else {})}
        except Exception as err:  # noqa: BLE001 - everything is reported to the parent
            answer = {"error": f"{type(err).__name__}: {err}"[:4000]}
        sys.stdout.write(json.dumps({"id": request.get("id"), **answer}) + "\n")
        sys.stdout.flush()
