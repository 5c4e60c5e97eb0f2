"""The sounds and images a script names: background, intro, outro and cover."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from .checker import Checker, KeyPath, named_file, suggest
from .model import AUDIO_SUFFIXES, GENERATED_BACKGROUNDS, GENERATED_SOUNDS, Background, Bumper, Duck

MAX_COVER_BYTES = 20_000_000  # a cover larger than this is not cover art
MAX_COVER_PIXELS = 6000 * 6000  # podcast apps ask for 1400-3000 px a side



def cover_for(value: Any, script_path: Path, check: Checker) -> Path | None:
    if not isinstance(value, str):
        return None
    file = named_file(value, script_path.parent, ("cover",), check, "cover image")
    if file is None:
        return None
    problem = cover_problem(file)
    if problem:
        check.error(("cover",), f"{value}: {problem}")
        return None
    return file


def cover_problem(file: Path) -> str:
    """Why an image cannot be cover art, or "": a real PNG or JPEG, decoded whole, of bounded size."""
    from PIL import Image

    size = file.stat().st_size
    if size > MAX_COVER_BYTES:
        return f"the image is {size / 1e6:.0f} MB; a cover must be under {MAX_COVER_BYTES // 1_000_000} MB"
    try:
        with Image.open(file, formats=("PNG", "JPEG")) as image:
            if image.format not in ("PNG", "JPEG"):
                return f"a cover must be a PNG or JPEG image, not {image.format or 'this kind of file'}"
            width, height = image.size
            if width * height > MAX_COVER_PIXELS:
                return (f"the image is {width}x{height} pixels; a cover must have at most "
                        f"{MAX_COVER_PIXELS // 1_000_000} million (3000x3000 is plenty)")
            image.load()
    except Image.DecompressionBombError:
        return (f"the image has far more pixels than a cover: at most {MAX_COVER_PIXELS // 1_000_000} million "
                "(3000x3000 is plenty)")
    except Image.UnidentifiedImageError:
        return "a cover must be a PNG or JPEG image, and this file is neither"
    except (OSError, ValueError, SyntaxError) as err:
        return f"not a readable PNG or JPEG image ({err})"
    return ""


def background_for(value: dict[str, Any], script_path: Path, check: Checker) -> Background | None:
    sound = value.get("sound")
    if not isinstance(sound, str):
        return None
    keys = ("background", "sound")
    sound = _sound(sound, GENERATED_BACKGROUNDS, keys, script_path, check)
    if sound is None:
        return None
    level = check.level(value["level"], ("background", "level")) if "level" in value else None
    fade_in = check.duration(value["fade_in"], ("background", "fade_in")) if "fade_in" in value else 0
    fade_out = check.duration(value["fade_out"], ("background", "fade_out")) if "fade_out" in value else 0
    duck = _duck(value.get("duck", True), check)
    if ("level" in value and level is None) or fade_in is None or fade_out is None or duck is False:
        return None
    return Background(sound=sound, level_db=level, fade_in=fade_in, fade_out=fade_out, duck=duck,
                      where=check.tree.where(check.mapped(keys)))


def _sound(sound: str, generated: tuple[str, ...], keys: KeyPath, script_path: Path, check: Checker) -> str | None:
    """A generated sound's name as it is, or an audio file's resolved path; None if neither."""
    if sound in generated:
        return sound
    if not sound.lower().endswith(AUDIO_SUFFIXES):
        check.error(keys, f"'{sound}' is neither a generated sound ({', '.join(generated)})"
                    f"{suggest(sound, generated)} nor an audio file ({', '.join(AUDIO_SUFFIXES)})")
        return None
    file = named_file(sound, script_path.parent, keys, check, "audio file")
    return str(file) if file is not None else None


def _duck(value: Any, check: Checker) -> Duck | None | Literal[False]:
    """`true` (the default dip), `false` or 0 (none), a depth (`8` or `8 dB`; a dip either way,
    so -8 means the same), or {depth, attack, release}. False when the value is wrong."""
    if value is True:
        return Duck()
    if value is False:
        return None
    keys = ("background", "duck")
    fields = value if isinstance(value, dict) else {"depth": value}
    depth = check.level(fields["depth"], keys + ("depth",) if isinstance(value, dict) else keys) \
        if "depth" in fields else Duck().depth_db
    attack = check.duration(fields["attack"], keys + ("attack",)) if "attack" in fields else Duck().attack
    release = check.duration(fields["release"], keys + ("release",)) if "release" in fields else Duck().release
    if depth is None or attack is None or release is None:
        return False
    if abs(depth) > 40:
        check.error(keys, f"a dip of {abs(depth):g} dB silences the background; use at most 40 dB, or false")
        return False
    return Duck(abs(depth), attack, release) if depth else None


def bumper_for(value: Any, name: str, script_path: Path, check: Checker) -> Bumper | None:
    """An intro or outro: `intro: theme.mp3`, `intro: bowl`, or {sound, level, say, title}."""
    if isinstance(value, str):
        value = {"sound": value}
    if not isinstance(value, dict):
        return None
    sound = value.get("sound", "")
    if isinstance(sound, str) and sound:
        sound = _sound(sound, GENERATED_SOUNDS, (name, "sound"), script_path, check)
        if sound is None:
            return None
    level = check.level(value["level"], (name, "level")) if "level" in value else Bumper("").level_db
    if level is None or not isinstance(sound, str):
        return None
    text = value.get("say", "")
    if isinstance(text, str) and text:
        check.text(text, (name, "say"), sides=False)
    return Bumper(title=value.get("title") or name.capitalize(), sound=sound, level_db=level,
                  text=text.strip() if isinstance(text, str) else "", where=check.tree.where(check.mapped((name,))))

