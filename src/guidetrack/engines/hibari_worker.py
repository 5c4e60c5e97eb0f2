"""The hibari worker: loads the model once and speaks one utterance a request.

Protocol (see engines/worker.py): `{"hello": true}` is answered with hibari's version;
`{"text", "path", "voice", "speed", "volume", "seed"}` writes a 16-bit 24 kHz WAV at "path" and is
answered `{"ok": true}`; a failure is `{"error": ...}`. Only voices inside the installed package
are loaded: HIBARI_HOME points at a folder that cannot exist, so a voice hibari would download is
an error, never a download. `[[phonemes]]` from a lexicon become hibari's own inline `[word](/phonemes/)`.

Run with a folder (`python -m guidetrack.engines.hibari_worker FOLDER`), it keeps hibari's
spelling-to-sound rules there in marshal's form, read back in 0.15 s where hibari's gzipped JSON
takes 0.37 s on every start (see `keep_rules`).
"""

from __future__ import annotations

import marshal
import os
import re
import sys
import threading
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..files import with_checksum, without_checksum, write_atomically
from .serving import serve

AT_ONCE = 4  # utterances spoken at once at most (on as many cores)
PHONEMES = re.compile(r"\[\[([^\[\]]+)\]\]")


def keep_rules(load: Callable[[str], Any], assets: Path, folder: Path, version: str) -> Callable[[str], Any]:
    """`load` (hibari's reader of its gzipped JSON assets, by name), keeping what it read in
    `folder` and reading it back from there: marshal's form, with its sha256 (`files.with_checksum`),
    under a name that changes with the asset's size and time, hibari's version and Python's
    (marshal's format is Python's own). Anything damaged or unreadable is read from the asset again."""
    def kept(name: str) -> Any:
        try:
            source = (assets / name).stat()
        except OSError:
            return load(name)  # hibari's own reader says what is wrong
        python = f"{sys.version_info[0]}{sys.version_info[1]}"
        path = folder / f"hibari-{version}-py{python}-{name}-{source.st_size}-{source.st_mtime_ns}.marshal"
        try:
            payload = without_checksum(path.read_bytes())
            if payload is not None:
                return marshal.loads(payload)
        except (OSError, ValueError, EOFError, TypeError):
            pass
        value = load(name)
        try:
            write_atomically(path, with_checksum(marshal.dumps(value)))
            for older in folder.glob(f"hibari-*-{name}-*.marshal"):  # another hibari's, Python's or asset's
                if older != path:
                    older.unlink(missing_ok=True)
        except (OSError, ValueError):
            pass  # a read-only or full cache: read from the asset every time
        return value
    return kept


def main() -> None:
    # a cache folder that cannot exist (a file's child): hibari finds no voice there, and cannot
    # store a download in it; only the voices inside the package load
    os.environ["HIBARI_HOME"] = os.path.join(os.devnull, "hibari")
    # hibari's inverse STFT uses scipy.fft when it can import it, and numpy's FFT otherwise (its
    # documented fallback). Importing scipy.fft takes 0.2 s of every start; speaking is as fast
    # without it, and the samples differ by at most one step of 16-bit (measured)
    sys.modules.setdefault("scipy.fft", None)  # type: ignore[arg-type]
    from importlib.metadata import version

    import hibari.g2p
    import numpy as np
    from hibari import Hibari
    from hibari.g2p import G2P
    from hibari.voices import DEFAULT, VOICES

    if len(sys.argv) > 1 and hasattr(hibari.g2p, "_load_json") and hasattr(hibari.g2p, "ASSETS"):
        hibari.g2p._load_json = keep_rules(hibari.g2p._load_json, Path(hibari.g2p.ASSETS), Path(sys.argv[1]),
                                           version("hibari-tts"))

    models: dict[str, Hibari] = {}
    loading = threading.Lock()

    def model(voice: str) -> Hibari:
        with loading:
            if voice not in models:
                # the spelling-to-sound rules load while onnxruntime builds the model's session,
                # which it does without holding the GIL (0.23 s for both, 0.33 s one after the other)
                rules: dict[str, G2P] = {}
                british = VOICES.get(voice, {}).get("british", False)
                loader = threading.Thread(target=lambda: rules.setdefault("g2p", G2P(british=british)), daemon=True)
                loader.start()
                try:
                    tts = Hibari(voice=voice, threads=1)
                finally:
                    loader.join()
                if "g2p" in rules and getattr(tts, "_g2p", False) is None:
                    tts._g2p = rules["g2p"]  # what its g2p property would make, at its first word
                tts.g2p  # noqa: B018 - loaded now, not at the first word (here, if the thread could not)
                models[voice] = tts
            return models[voice]

    def preload() -> None:
        try:
            model(DEFAULT)
        except Exception:  # noqa: BLE001 - the first request loads it again, and reports what went wrong
            pass

    # the bundled voice loads (half a second) while the render reads its cache, before it asks
    threading.Thread(target=preload, name="hibari-preload", daemon=True).start()

    def speak(request: dict) -> None:
        tts = model(request["voice"])
        text = PHONEMES.sub(lambda m: f"[x](/{m.group(1)}/)", request["text"])
        audio = tts(text, speed=request["speed"], seed=request["seed"]) * request["volume"]
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
        with wave.open(request["path"], "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(tts.sample_rate)
            out.writeframes(pcm.tobytes())

    # onnxruntime lets go of the GIL while it runs the model, and most of an utterance's time is
    # spent there: one utterance a core at once speaks the main track's 45 in 0.46 s, not 0.83 s,
    # each the same samples as alone (each request has its own seed; tests/test_hibari.py)
    # the cores as encode.cores counts them (not imported: this worker imports little, to start fast)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    serve(version("hibari-tts"), speak, at_once=min(cores, AT_ONCE))


if __name__ == "__main__":
    main()
