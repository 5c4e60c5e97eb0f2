"""Time and level units.

Inside guidetrack, time is an int number of samples at SAMPLE_RATE. Seconds
(float) appear only at the edges: parsing scripts and printing plans.
"""

from __future__ import annotations

import math
import re

SAMPLE_RATE = 44_100  # samples per second, for every stage
CHANNELS = 2  # the mix and the MP3 are stereo

Samples = int


def to_samples(seconds: float) -> Samples:
    return int(round(seconds * SAMPLE_RATE))


def to_seconds(samples: Samples) -> float:
    return samples / SAMPLE_RATE


def to_ms(samples: Samples) -> int:
    """Whole milliseconds, rounded down: the unit of ID3 chapters and transcript times."""
    return samples * 1000 // SAMPLE_RATE


def timestamp(ms: int, decimal: str = ".") -> str:
    """`HH:MM:SS.mmm`, as WebVTT and Vorbis chapters write it (SRT uses a comma)."""
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{decimal}{ms % 1000:03d}"


_UNIT_NAMES = {  # every way of writing a unit that people use -> its symbol
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "ms": "ms",
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(" + "|".join(sorted(_UNIT_NAMES, key=len, reverse=True))
                            + r")(?![a-z])", re.IGNORECASE)
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: object) -> float:
    """Parse `3`, `2.5`, `"4s"`, `"1.5s"`, `"1m30s"`, `"1h"` (and `"20 min"`, `"5 mins"`, `"1 hr"`,
    `"1 hour 30 minutes"`) into seconds.

    Raises ValueError with a message meant for the script's author.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 4s or 1m30s, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            compact = text.replace(" ", "")
            if compact.startswith("-"):
                raise ValueError(f"'{value}' is negative: a duration is 0 or more") from None
            parts = list(_DURATION_PART.finditer(compact))
            if not parts or "".join(p.group(0) for p in parts) != compact:
                raise ValueError(
                    f"'{value}' is not a duration: write seconds (4, 2.5) or "
                    "a string like 4s, 1.5s, 2m, 1m30s, 20 min, 1h"
                ) from None
            units = [_UNIT_NAMES[p.group(2).lower()] for p in parts]
            if len(set(units)) != len(units):
                raise ValueError(f"'{value}' repeats a unit") from None
            seconds = sum(float(p.group(1)) * _UNIT_SECONDS[unit] for p, unit in zip(parts, units, strict=True))
    else:
        raise ValueError(f"expected a duration like 4s or 1m30s, got {type(value).__name__}")
    if not math.isfinite(seconds):
        raise ValueError(f"'{value}' is not a usable duration: it is too large or not a number")
    if seconds < 0:
        raise ValueError(f"'{value}' is negative: a duration is 0 or more")
    if seconds > 48 * 3600:
        raise ValueError(f"'{value}' is longer than 48 hours")
    return seconds


_LEVEL = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*(?:db)?\s*$", re.IGNORECASE)


def parse_level(value: object) -> float:
    """Parse a level in decibels: `-18` or `"-18 dB"`."""
    if isinstance(value, bool):
        raise ValueError(f"expected a level in dB like -18, got {value!r}")
    if isinstance(value, (int, float)):
        level = float(value)
    elif isinstance(value, str) and (m := _LEVEL.match(value)):
        level = float(m.group(1))
    else:
        raise ValueError(f"'{value}' is not a level: write decibels like -18 or '-18 dB'")
    if not math.isfinite(level) or not -120 <= level <= 24:
        raise ValueError(f"level {value} is out of range (-120 to 24 dB)")
    return level


def db_to_gain(db: float) -> float:
    return 10.0 ** (db / 20.0)


def format_clock(samples: Samples) -> str:
    """A time for people: `m:ss`, with tenths when there are any (`0:04.7`), and `h:mm:ss` from an
    hour on (`8:00:00`, not `480:00.0`)."""
    tenths = round(samples * 10 / SAMPLE_RATE)
    whole, tenth = divmod(tenths, 10)
    hours, rest = divmod(whole, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
    return f"{clock}.{tenth}" if tenth else clock
