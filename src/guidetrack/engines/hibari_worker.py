"""The hibari worker: loads the model once and speaks one utterance a request.

Protocol (see engines/worker.py): `{"hello": true}` is answered with hibari's version;
`{"text", "path", "voice", "speed", "volume", "seed"}` writes a 16-bit 24 kHz WAV at "path" and is
answered `{"ok": true}`; a failure is `{"error": ...}`. Only voices inside the installed package
are loaded: HIBARI_HOME points at a folder that cannot exist, so a voice hibari would download is
an error, never a download. `[[phonemes]]` from a lexicon become hibari's own inline `[word](/phonemes/)`.
"""

from __future__ import annotations

import os
import re
import threading
import wave

from .serving import serve

PHONEMES = re.compile(r"\[\[([^\[\]]+)\]\]")


def main() -> None:
    # a cache folder that cannot exist (a file's child): hibari finds no voice there, and cannot
    # store a download in it; only the voices inside the package load
    os.environ["HIBARI_HOME"] = os.path.join(os.devnull, "hibari")
    from importlib.metadata import version

    import numpy as np
    from hibari import Hibari
    from hibari.voices import DEFAULT

    models: dict[str, Hibari] = {}
    loading = threading.Lock()

    def model(voice: str) -> Hibari:
        with loading:
            if voice not in models:
                models[voice] = Hibari(voice=voice, threads=1)
                models[voice].g2p  # noqa: B018 - its spelling-to-sound rules load now, not at the first word
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

    serve(version("hibari-tts"), speak)


if __name__ == "__main__":
    main()
