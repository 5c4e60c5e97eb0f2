"""The published library, written from the build manifest: catalog.json, a podcast feed
(RSS 2.0 with the iTunes and Podcasting 2.0 namespaces) and an index.html that works offline.
"""

from __future__ import annotations

import html
import json
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree as ET

from .encode import FORMATS
from .files import write_atomically
from .manifest import Manifest, StoredFile, Track
from .sidecars import generated_cover
from .units import SAMPLE_RATE, format_clock

CATALOG = "catalog.json"
FEED = "feed.xml"
INDEX = "index.html"
COVER = "cover.png"
ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"
PODCAST = "https://podcastindex.org/namespace/1.0"
ATOM = "http://www.w3.org/2005/Atom"
PODCAST_GUID_NAMESPACE = uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6")  # Podcasting 2.0's, for podcast:guid
FILE_TYPES = {"vtt": "text/vtt", "srt": "application/x-subrip", "chapters": "application/json+chapters"}


AUDIO_TYPES = {suffix: mime for suffix, _, _, mime in FORMATS.values()}


def _mime(path: str) -> str:
    return AUDIO_TYPES.get(Path(path).suffix, "application/octet-stream")


@dataclass(frozen=True)
class Record:
    """One class as published: its output's name, its track, and the files it has."""

    id: str  # the output's name in the build folder: stays when the class is re-rendered
    script: str
    track: Track
    files: dict[str, StoredFile]
    published: str  # ISO 8601
    built: str

    def url(self, kind: str) -> str:
        return quote(self.files[kind].path)

    def to_json(self) -> dict[str, Any]:
        """The class in catalog.json: the track without its transcript, the files with their types
        (and without the build machine's own `stat`)."""
        track = self.track.to_json()
        del track["transcript"]
        files = {kind: {"path": f.path, "bytes": f.bytes, "sha256": f.sha256,
                        "type": _mime(f.path) if kind == "audio" else FILE_TYPES.get(kind, "")}
                 for kind, f in self.files.items()}
        return {"id": self.id, "script": self.script, **track, "loudness": track["loudness"] or None,
                "files": files, "published": self.published, "built": self.built}


def tracks(manifest: Manifest) -> list[Record]:
    """One record a built output, in library order (script path, then the script's variant order)."""
    return [Record(name, entry.script, entry.track, entry.files, entry.published, entry.built)
            for name, entry in sorted(manifest.outputs.items(), key=lambda item: (item[1].script, item[0]))]


def library_language(records: list[Record]) -> str:
    """The language most of the library's classes are in (the feed and the page have one)."""
    languages = Counter(r.track.language for r in records)
    return languages.most_common(1)[0][0] if languages else "en"


def library_title(records: list[Record], fallback: str) -> str:
    albums = Counter(r.track.album for r in records if r.track.album)
    return albums.most_common(1)[0][0] if albums else fallback


def publish(out: Path, manifest: Manifest, base_url: str | None = None, title: str = "") -> None:
    """Write catalog.json, cover.png, index.html and (given the address the folder is served at)
    feed.xml. `title` defaults to the album most tracks share."""
    records = tracks(manifest)
    name = title or library_title(records, "guidetrack library")
    catalog = {"guidetrack-catalog": 1, "title": name, "tracks": [r.to_json() for r in records]}
    # keys sorted: a rebuild that changes nothing writes the same bytes
    _write(out / CATALOG, json.dumps(catalog, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    cover = generated_cover(name, f"{len(records)} classes")
    if not (out / COVER).is_file() or (out / COVER).read_bytes() != cover:
        write_atomically(out / COVER, cover)
    _write(out / INDEX, index_html(name, records, feed=bool(base_url)))
    if base_url:
        _write(out / FEED, feed_xml(name, records, base_url))


def _write(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    if not path.is_file() or path.read_bytes() != data:  # unchanged files keep their bytes and times
        write_atomically(path, data)


# ---------------------------------------------------------------- the feed


def feed_xml(title: str, records: list[Record], base_url: str) -> str:
    base = base_url if base_url.endswith("/") else base_url + "/"

    def url(path: str) -> str:
        return base + quote(path)

    for prefix, namespace in (("itunes", ITUNES), ("podcast", PODCAST), ("atom", ATOM)):
        ET.register_namespace(prefix, namespace)
    rss = ET.Element("rss", {"version": "2.0"})
    channel = ET.SubElement(rss, "channel")
    authors = Counter(r.track.author for r in records if r.track.author)
    author = authors.most_common(1)[0][0] if authors else "guidetrack"

    def add(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
        element = ET.SubElement(parent, tag, attributes)
        if text is not None:
            element.text = text
        return element

    add(channel, "title", title)
    add(channel, "link", base)
    add(channel, "description", f"{title}: guided practice for eyes-closed listening, {len(records)} classes.")
    add(channel, "language", library_language(records))
    add(channel, "generator", "guidetrack")
    add(channel, f"{{{ATOM}}}link", href=url(FEED), rel="self", type="application/rss+xml")
    add(channel, f"{{{ITUNES}}}author", author)
    add(channel, f"{{{ITUNES}}}image", href=url(COVER))
    image = add(channel, "image")
    add(image, "url", url(COVER))
    add(image, "title", title)
    add(image, "link", base)
    category = add(channel, f"{{{ITUNES}}}category", text="Health & Fitness")
    add(category, f"{{{ITUNES}}}category", text="Alternative Health")
    add(channel, f"{{{ITUNES}}}explicit", "false")
    add(channel, f"{{{ITUNES}}}type", "episodic")
    add(channel, f"{{{PODCAST}}}guid", str(uuid.uuid5(PODCAST_GUID_NAMESPACE, base.split("://", 1)[-1].rstrip("/"))))
    add(channel, f"{{{PODCAST}}}medium", "podcast")
    for record in sorted(records, key=lambda r: (r.published, r.id), reverse=True):
        track, files = record.track, record.files
        item = add(channel, "item")
        add(item, "title", track.title)
        add(item, "description", track.description or track.title)
        add(item, "guid", f"guidetrack:{record.id}", isPermaLink="false")  # stays when the class is re-rendered
        add(item, "pubDate", format_datetime(datetime.fromisoformat(record.published)))
        audio = files["audio"]
        add(item, "enclosure", url=url(audio.path), length=str(audio.bytes), type=_mime(audio.path))
        add(item, f"{{{ITUNES}}}duration", str(round(track.duration)))
        add(item, f"{{{ITUNES}}}episodeType", "full")
        if track.author:
            add(item, f"{{{ITUNES}}}author", track.author)
        if "chapters" in files:
            add(item, f"{{{PODCAST}}}chapters", url=url(files["chapters"].path), type=FILE_TYPES["chapters"])
        for kind in ("vtt", "srt"):
            if kind in files:
                add(item, f"{{{PODCAST}}}transcript", url=url(files[kind].path), type=FILE_TYPES[kind],
                    language=track.language)
    ET.indent(rss)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(rss, encoding="unicode") + "\n"


# ---------------------------------------------------------------- the page

PAGE = """<!doctype html>
<html lang="{language}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
  body {{ font: 17px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem;
         color: #2b2d42; background: #f7f3ee; }}
  header {{ display: flex; gap: 1rem; align-items: center; }}
  header img {{ width: 96px; height: 96px; border-radius: 8px; }}
  article {{ background: #fff; border-radius: 10px; padding: 1rem 1.25rem; margin: 1.25rem 0;
            box-shadow: 0 1px 3px rgba(0,0,0,.08); }}
  h2 {{ margin: 0 0 .25rem; font-size: 1.2rem; }}
  .meta {{ color: #6c6f7f; font-size: .9rem; }}
  audio {{ width: 100%; margin: .75rem 0 .25rem; }}
  ol.chapters {{ padding-left: 1.25rem; font-size: .95rem; }}
  ol.chapters button {{ background: none; border: 0; color: #3d5a80; cursor: pointer; padding: 0; font: inherit; }}
  details p {{ margin: .3rem 0; }}
</style>
</head>
<body>
<header><img src="{cover}" alt=""><div><h1>{title}</h1><p class="meta">{count} classes{feed}</p></div></header>
{articles}
<script>
  // chapter buttons move their track's player to the chapter's start
  document.querySelectorAll("button[data-start]").forEach(function (button) {{
    button.addEventListener("click", function () {{
      var player = button.closest("article").querySelector("audio");
      player.currentTime = parseFloat(button.dataset.start);
      player.play();
    }});
  }});
</script>
</body>
</html>
"""

ARTICLE = """<article id="{anchor}">
  <h2>{title}</h2>
  <p class="meta">{duration}{author}</p>
  <p>{description}</p>
  <audio controls preload="metadata" src="{audio}">
    <track kind="captions" srclang="{language}" label="Transcript" src="{vtt}">
  </audio>
  <ol class="chapters">{chapters}</ol>
  <details><summary>Transcript</summary>{transcript}</details>
  <p class="meta">Files: <a href="{audio}" download>audio</a> · <a class="transcript" href="{vtt}">transcript (WebVTT)</a> · <a class="transcript" href="{srt}">SRT</a> · <a href="{chapters_file}">chapters</a></p>
</article>"""


def index_html(title: str, records: list[Record], feed: bool = False) -> str:
    e = html.escape
    articles = []
    for record in records:
        track = record.track
        chapters = "".join(f'<li><button data-start="{c.start}">{format_clock(round(c.start * SAMPLE_RATE))}</button> '
                           f'{e(c.title)}</li>' for c in track.chapters)
        articles.append(ARTICLE.format(
            anchor=e(record.id), title=e(track.title), description=e(track.description),
            language=e(track.language), duration=format_clock(round(track.duration * SAMPLE_RATE)),
            author=f" · {e(track.author)}" if track.author else "",
            audio=e(record.url("audio")), vtt=e(record.url("vtt")), srt=e(record.url("srt")),
            chapters_file=e(record.url("chapters")),
            chapters=chapters, transcript="".join(f"<p>{e(line)}</p>" for line in track.transcript),
        ))
    return PAGE.format(title=e(title), cover=COVER, count=len(records), articles="\n".join(articles),
                       language=e(library_language(records)),
                       feed=f' · <a href="{FEED}">podcast feed</a>' if feed else "")
