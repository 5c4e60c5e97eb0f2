"""How a long stage tells how far it has come: the one protocol the stages call, and a silent
default. The command line turns it into a progress bar on a terminal, or plain lines."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def stage(self, name: str, total: int = 0) -> None:
        """A new stage begins: `name` for people ("speaking 12 new clips"), `total` its units (0:
        unknown). An empty `name` gives the current stage its `total`."""

    def advance(self, done: int) -> None:
        """How many of the stage's units are done."""


class Silent:
    def stage(self, name: str, total: int = 0) -> None:
        pass

    def advance(self, done: int) -> None:
        pass


SILENT: Progress = Silent()
