"""The Piper worker: loads each voice model once and speaks one utterance a request.

Protocol (see engines/worker.py): `{"hello": true}` is answered with Piper's version;
`{"text", "path", "model", "config", "length_scale", "volume"}` writes a 16-bit WAV at
"path" and is answered `{"ok": true}`; a failure is `{"error": ...}`. Requests are
handled one at a time: onnxruntime already spreads one utterance over the cores.
"""

from __future__ import annotations

import wave

from .serving import serve


def main() -> None:
    from importlib.metadata import version

    from piper import PiperVoice, SynthesisConfig

    voices: dict[str, PiperVoice] = {}

    def speak(request: dict) -> None:
        voice = voices.get(request["model"])
        if voice is None:
            voice = voices[request["model"]] = PiperVoice.load(request["model"], config_path=request["config"])
        config = SynthesisConfig(length_scale=request["length_scale"], volume=request["volume"])
        with wave.open(request["path"], "wb") as out:
            voice.synthesize_wav(request["text"], out, syn_config=config)

    serve(version("piper-tts"), speak)


if __name__ == "__main__":
    main()
