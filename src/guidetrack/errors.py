"""One exception hierarchy for the whole package. Only the CLI prints or exits."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from pathlib import Path


class ExitCode(IntEnum):
    """What the command line exits with; named here once."""

    OK = 0
    FAILED = 1  # a GuidetrackError: something went wrong that the user can act on
    INVALID = 2  # an InvalidInput: a bad script, option or file; nothing was written
    INTERRUPTED = 130  # Ctrl-C or a termination signal; nothing half-written is left


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Location:
    file: Path
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a script, with where it is."""

    message: str
    where: Location | None = None
    severity: Severity = Severity.ERROR

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity(self.severity))

    def __str__(self) -> str:
        prefix = f"{self.where}: " if self.where else ""
        label = "warning: " if self.severity is Severity.WARNING else ""
        return f"{prefix}{label}{self.message}"


class GuidetrackError(Exception):
    """Base class: something the user can act on (ExitCode.FAILED)."""


class InvalidInput(GuidetrackError):
    """Bad script, missing file, impossible target (ExitCode.INVALID)."""

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class EngineError(GuidetrackError):
    """The speech engine failed or produced no usable audio."""


class MissingTool(GuidetrackError):
    """A program guidetrack runs (ffmpeg) is not installed."""


class EncodeError(GuidetrackError):
    """The encoder (ffmpeg) failed; carries its command and stderr."""

    def __init__(self, message: str, command: list[str] | None = None, stderr: str = ""):
        self.command = command or []
        self.stderr = stderr
        detail = f"\n  command: {' '.join(self.command)}" if self.command else ""
        if stderr.strip():
            detail += "\n  ffmpeg said: " + stderr.strip()[-2000:]
        super().__init__(message + detail)
