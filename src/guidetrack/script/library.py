"""A library's own settings: `library.yaml` at the library's root.

The page, the feed and the tags of every class take them as their defaults: the library's
title, author, owner, language, copyright, description, category, address and cover. `build`'s
flags (--title, --base-url) override them; a script's own `author` and `album` win over them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, Problem
from ..languages import parse
from .checker import Checker, Context
from .sounds import cover_for

LIBRARY_FILE = "library.yaml"
CATEGORIES = (  # Apple Podcasts' categories that fit practice sessions; any other is a warning
    "Health & Fitness", "Health & Fitness/Alternative Health", "Health & Fitness/Fitness",
    "Health & Fitness/Mental Health", "Health & Fitness/Medicine", "Religion & Spirituality",
    "Religion & Spirituality/Spirituality", "Education", "Education/Self-Improvement", "Arts/Performing Arts",
    "Kids & Family", "Leisure",
)

LIBRARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "guidetrack-library": {"const": 1, "description": "library settings format version"},
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "author": {"type": "string", "description": "the classes' artist tag, when a script names no author"},
        "owner": {"type": "object", "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
                  "additionalProperties": False, "description": "the feed's itunes:owner"},
        "language": {"type": "string", "minLength": 2, "maxLength": 35},
        "copyright": {"type": "string"},
        "description": {"type": "string"},
        "category": {"type": "string", "description": "Apple Podcasts category, as Health & Fitness/Alternative Health"},
        "base_url": {"type": "string", "description": "where the built folder is served (the feed's address)"},
        "cover": {"type": "string", "pattern": r"(?i)\.(png|jpe?g)$", "description": "a square PNG or JPEG"},
    },
    "required": ["guidetrack-library"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class LibrarySettings:
    title: str = ""
    author: str = ""
    owner_name: str = ""
    owner_email: str = ""
    language: str = ""
    copyright: str = ""
    description: str = ""
    category: str = "Health & Fitness/Alternative Health"
    base_url: str = ""
    cover: Path | None = None
    source: Path | None = None  # the file they were read from


def is_library(data: Any) -> bool:
    return isinstance(data, dict) and "guidetrack-library" in data


def library_settings(path: Path, context: Context, data: Any, tree: Any) -> tuple[LibrarySettings, tuple[Problem, ...]]:
    """The settings in a library.yaml, checked; raises InvalidInput with every error in it."""
    check = Checker(tree, context, (path.resolve(),))
    settings = LibrarySettings(source=path.resolve())
    if check.schema(data, LIBRARY_SCHEMA, ()):
        for key in ("title", "author", "copyright", "description"):
            check.plain(data.get(key), (key,))
        owner = data.get("owner", {})
        email = owner.get("email", "")
        if email and ("@" not in email or any(ch.isspace() for ch in email)):
            check.error(("owner", "email"), f"'{email}' is not an email address")
        category = data.get("category", settings.category)
        if category not in CATEGORIES:
            check.warn(("category",), f"'{category}' is not one of the categories podcast apps know for this; "
                       f"use one of: {', '.join(CATEGORIES)}")
        base_url = data.get("base_url", "")
        if base_url and not base_url.startswith(("http://", "https://")):
            check.error(("base_url",), "give the address the built folder is served at, as https://example.org/classes/")
        language = data.get("language", "")
        if language:
            try:
                parse(language)
            except ValueError as err:
                check.error(("language",), str(err))
        settings = LibrarySettings(
            title=data.get("title", "").strip(), author=data.get("author", "").strip(),
            owner_name=owner.get("name", "").strip(), owner_email=email.strip(), language=language,
            copyright=data.get("copyright", "").strip(), description=data.get("description", "").strip(),
            category=category, base_url=base_url, cover=cover_for(data.get("cover"), path, check),
            source=path.resolve())
    warnings = tuple(context.settle())
    return settings, warnings


def read_library(library: Path) -> tuple[LibrarySettings, tuple[Problem, ...]]:
    """The library's settings (defaults when it has no library.yaml). Raises InvalidInput."""
    path = library / LIBRARY_FILE
    if not path.is_file():
        return LibrarySettings(), ()
    context = Context(library.resolve())
    data, tree = context.read(path)
    if not is_library(data):
        raise InvalidInput(Problem(f"{LIBRARY_FILE} at the library's root holds the library's settings: start it "
                                   "with guidetrack-library: 1", tree.where(())))
    return library_settings(path, context, data, tree)
