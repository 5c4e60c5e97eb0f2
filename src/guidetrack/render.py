"""The whole flow for one script: load -> plan -> speak -> mix -> encode."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .encode import Tags, encode
from .mix import mix
from .plan import Plan, make_plan
from .script import Script, load
from .speech import ClipCache, Speaker


@dataclass(frozen=True)
class Rendered:
    out: Path
    plan: Plan
    samples: int
    cache_hits: int
    cache_misses: int


def plan_script(path: Path, cache_dir: Path | None = None) -> tuple[Plan, Speaker]:
    script = load(path)
    speaker = Speaker(script.voice, ClipCache(cache_dir))
    return make_plan(script, speaker.lengths), speaker


def tags_for(script: Script) -> Tags:
    return Tags(
        title=script.title,
        artist=script.author or "guidetrack",
        album=script.album or "guidetrack sessions",
        comment=script.description or f"Rendered by guidetrack {__version__} from {script.path.name}",
    )


def default_output(script_path: Path) -> Path:
    from .script import slugify

    return Path("out") / f"{slugify(script_path.stem)}.mp3"


def render(path: Path, out: Path | None = None, cache_dir: Path | None = None) -> Rendered:
    plan, speaker = plan_script(path, cache_dir)
    target = out or default_output(path)
    samples = encode(mix(plan, speaker.clip), target, tags_for(plan.script))
    return Rendered(target, plan, samples, speaker.cache.hits, speaker.cache.misses)
