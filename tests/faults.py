"""Fault injection: run the real `guidetrack` CLI with a fault at a chosen stage.

    python tests/faults.py [--kill-at STAGE[@N]] [--memory FILE] -- render script.yaml ...

`--kill-at` names a stage of `STAGES`, or a function as `module:qualified.name`
(`os:replace`); the process kills itself with SIGKILL (nothing can be cleaned up, as with a power
cut or the OOM killer) when the function is called for the Nth time (default: the first), before
it runs. `--memory` writes the process's peak resident memory (KiB, VmHWM) to FILE when it exits.
Nothing in guidetrack knows about this: the functions are wrapped from outside.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from pathlib import Path

STAGES = {  # the stages the tests kill at, by what is happening there
    "speaking": "guidetrack.speech:Speaker._check",  # the engine's output is in a temporary folder
    "caching": "guidetrack.speech:_encode_entry",  # a clip is about to be stored
    "measuring": "guidetrack.encode:measure_file",  # the encoded file is a temporary file beside the output
    "tagging": "guidetrack.encode:write_tags",
    "renaming": "os:replace",  # the Nth rename: with N=2, the audio is in place and its transcripts not yet
}


def _wrap(target: str, count: int) -> None:
    module_name, _, qualified = STAGES.get(target, target).partition(":")
    owner = importlib.import_module(module_name)
    *path, name = qualified.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == count:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-at")
    parser.add_argument("--memory", type=Path)
    options, rest = parser.parse_known_args()
    if rest and rest[0] == "--":
        rest = rest[1:]
    if options.kill_at:
        target, _, count = options.kill_at.partition("@")
        _wrap(target, int(count or 1))
    from guidetrack.cli import main as cli

    sys.argv = ["guidetrack", *rest]
    try:
        cli()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    if options.memory:  # VmHWM: this process's own peak (ru_maxrss would carry its parent's across exec)
        peak = next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmHWM:"))
        options.memory.write_text(peak)
    return code


if __name__ == "__main__":
    sys.exit(main())
