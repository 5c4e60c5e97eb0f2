"""The published library, written from the build manifest: catalog.json, a podcast feed
(RSS 2.0 with the iTunes and Podcasting 2.0 namespaces) and an index.html that works offline.
"""

from __future__ import annotations

import html
import json
import uuid
from collections import Counter
from collections.abc import Callable
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
from .script import LibrarySettings
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
        del track["transcript"], track["spoken"]
        files = {kind: {"path": f.path, "bytes": f.bytes, "sha256": f.sha256,
                        "type": _mime(f.path) if kind == "audio" else FILE_TYPES.get(kind, "")}
                 for kind, f in self.files.items()}
        return {"id": self.id, "script": self.script, **track, "loudness": track["loudness"] or None,
                "files": files, "published": self.published, "built": self.built}


def tracks(manifest: Manifest) -> list[Record]:
    """One record a built output, in library order (script path, then the script's variant order)."""
    return [Record(name, entry.script, entry.track, entry.files, entry.published, entry.built)
            for name, entry in sorted(manifest.outputs.items(), key=lambda item: (item[1].script, item[0]))]


def library_language(records: list[Record], settings: LibrarySettings = LibrarySettings()) -> str:
    """The library's language: library.yaml's, or the one most of its classes are in."""
    languages = Counter(r.track.language for r in records)
    return settings.language or (languages.most_common(1)[0][0] if languages else "en")


def classes(records: list[Record]) -> list[list[Record]]:
    """The records grouped by class (script), each class's main variant first."""
    grouped: dict[str, list[Record]] = {}
    for record in records:
        grouped.setdefault(record.script, []).append(record)
    return [sorted(group, key=lambda r: (r.track.order, r.id)) for group in grouped.values()]


def class_title(record: Record) -> str:
    """A class's title without its variant's name."""
    return record.track.title.removesuffix(f" ({record.track.variant})") if record.track.variant else record.track.title


def library_title(records: list[Record], fallback: str) -> str:
    albums = Counter(r.track.album for r in records if r.track.album)
    return albums.most_common(1)[0][0] if albums else fallback


def publish(out: Path, manifest: Manifest, base_url: str | None = None, title: str = "",
            settings: LibrarySettings = LibrarySettings()) -> None:
    """Write catalog.json, the cover, index.html and (given the address the folder is served at)
    feed.xml. `title` defaults to the album most tracks share; `settings` are library.yaml's."""
    records = tracks(manifest)
    name = title or library_title(records, "Practice library")
    catalog = {"guidetrack-catalog": 1, "title": name, "tracks": [r.to_json() for r in records]}
    # keys sorted: a rebuild that changes nothing writes the same bytes
    _write(out / CATALOG, json.dumps(catalog, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    count = len(classes(records))
    if settings.cover is not None:
        cover, cover_name = settings.cover.read_bytes(), COVER if settings.cover.suffix.lower() == ".png" else "cover.jpg"
    else:
        cover, cover_name = generated_cover(name, f"{count} class{'es' if count != 1 else ''}"), COVER
    if not (out / cover_name).is_file() or (out / cover_name).read_bytes() != cover:
        write_atomically(out / cover_name, cover)
    def picture(record: Record) -> str:
        """The class's picture (its .svg), put in the page as it is; "" for a build before pictures."""
        file = record.files.get("svg")
        try:
            return (out / file.path).read_text("utf-8") if file else ""
        except (OSError, UnicodeDecodeError):
            return ""

    def pacer(record: Record) -> str:
        """A breath pacer that follows the player, from the class's breath phases (its .breath.json)."""
        file = record.files.get("breath")
        try:
            phases = json.loads((out / file.path).read_text("utf-8"))["phases"] if file else []
        except (OSError, ValueError, KeyError, TypeError):
            return ""
        return "\n    " + pacer_html(phases) if phases else ""

    _write(out / INDEX, index_html(name, records, feed=bool(base_url), settings=settings, cover=cover_name,
                                   picture=picture, pacer=pacer))
    if base_url:
        _write(out / FEED, feed_xml(name, records, base_url, settings=settings, cover=cover_name))


def _write(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    if not path.is_file() or path.read_bytes() != data:  # unchanged files keep their bytes and times
        write_atomically(path, data)


# ---------------------------------------------------------------- the feed


def feed_xml(title: str, records: list[Record], base_url: str, settings: LibrarySettings = LibrarySettings(),
             cover: str = COVER) -> str:
    """The podcast feed: one episode per output (a class with variants has an episode per length,
    its main one first), newest class first."""
    base = base_url if base_url.endswith("/") else base_url + "/"

    def url(path: str) -> str:
        return base + quote(path)

    for prefix, namespace in (("itunes", ITUNES), ("podcast", PODCAST), ("atom", ATOM)):
        ET.register_namespace(prefix, namespace)
    rss = ET.Element("rss", {"version": "2.0"})
    channel = ET.SubElement(rss, "channel")
    authors = Counter(r.track.author for r in records if r.track.author)
    author = settings.author or (authors.most_common(1)[0][0] if authors else "")

    def add(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
        element = ET.SubElement(parent, tag, attributes)
        if text is not None:
            element.text = text
        return element

    add(channel, "title", title)
    add(channel, "link", base)
    count = len(classes(records))
    add(channel, "description", settings.description or
        f"{title}: guided practice for eyes-closed listening, {count} class{'es' if count != 1 else ''}.")
    add(channel, "language", library_language(records, settings))
    if settings.copyright:
        add(channel, "copyright", settings.copyright)
    add(channel, "generator", "guidetrack")
    add(channel, f"{{{ATOM}}}link", href=url(FEED), rel="self", type="application/rss+xml")
    if author:
        add(channel, f"{{{ITUNES}}}author", author)
    if settings.owner_name or settings.owner_email:
        owner = add(channel, f"{{{ITUNES}}}owner")
        if settings.owner_name:
            add(owner, f"{{{ITUNES}}}name", settings.owner_name)
        if settings.owner_email:
            add(owner, f"{{{ITUNES}}}email", settings.owner_email)
    add(channel, f"{{{ITUNES}}}image", href=url(cover))
    image = add(channel, "image")
    add(image, "url", url(cover))
    add(image, "title", title)
    add(image, "link", base)
    main, _, sub_category = settings.category.partition("/")
    category = add(channel, f"{{{ITUNES}}}category", text=main)
    if sub_category:
        add(category, f"{{{ITUNES}}}category", text=sub_category)
    add(channel, f"{{{ITUNES}}}explicit", "false")
    add(channel, f"{{{ITUNES}}}type", "episodic")
    add(channel, f"{{{PODCAST}}}guid", str(uuid.uuid5(PODCAST_GUID_NAMESPACE, base.split("://", 1)[-1].rstrip("/"))))
    add(channel, f"{{{PODCAST}}}medium", "podcast")
    newest = sorted(classes(records), key=lambda group: max(r.published for r in group), reverse=True)
    for record in (record for group in newest for record in group):
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

# How a page with players looks and works, shared by the library page and `guidetrack serve`'s preview. It
# works by delegation and looks the pacers up on every frame, so content put in later works too.
PAGE_STYLE = """  body { font: 17px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem;
         color: #2b2d42; background: #f7f3ee; }
  header { display: flex; gap: 1rem; align-items: center; }
  header img { width: 96px; height: 96px; border-radius: 8px; }
  article { background: #fff; border-radius: 10px; padding: 1rem 1.25rem; margin: 1.25rem 0;
            box-shadow: 0 1px 3px rgba(0,0,0,.08); }
  h2 { margin: 0 0 .25rem; font-size: 1.2rem; }
  .meta { color: #6c6f7f; font-size: .9rem; }
  audio { width: 100%; margin: .75rem 0 .25rem; }
  ol.chapters { padding-left: 1.25rem; font-size: .95rem; }
  ol.chapters button { background: none; border: 0; color: #3d5a80; cursor: pointer; padding: 0; font: inherit; }
  details p { margin: .3rem 0; }
  details h4 { margin: .8rem 0 .2rem; font-size: .95rem; }
  div.picture svg { width: 100%; height: auto; cursor: pointer; }
  .pacer { display: flex; align-items: center; gap: 1rem; height: 7rem; }
  .pacer .circle { width: 6rem; height: 6rem; border-radius: 50%; background: #98c1d9; transform: scale(0.35);
                   opacity: .35; }
  .pacer .circle[data-phase]:not([data-phase=""]) { opacity: 1; }
  .pacer .phase { color: #6c6f7f; font-size: .95rem; }"""

PLAYER_SCRIPT = """  // breath pacers: while a player plays, its circle grows on each in-breath, holds, and shrinks on
  // each out-breath, from the class's breath phases; nothing else on the page moves
  var SMALL = 0.35, LARGE = 1.0, PHASES = new WeakMap();
  function playerOf(element) { return element.closest("section").querySelector("audio"); }
  function pace(pacer) {
    if (!PHASES.has(pacer)) { PHASES.set(pacer, JSON.parse(pacer.dataset.phases)); }
    var phases = PHASES.get(pacer), circle = pacer.querySelector(".circle"), label = pacer.querySelector(".phase");
    var t = playerOf(pacer).currentTime, lo = 0, hi = phases.length - 1, found = null;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (phases[mid][0] > t) { hi = mid - 1; } else { found = phases[mid]; lo = mid + 1; }
    }
    if (!found || t >= found[0] + found[1]) {
      circle.dataset.phase = ""; circle.style.transform = "scale(" + SMALL + ")"; label.textContent = "";
      return;
    }
    var done = (t - found[0]) / found[1], name = found[2], scale = SMALL;
    if (name === "in") { scale = SMALL + (LARGE - SMALL) * done; }
    else if (name === "hold") { scale = LARGE; }
    else if (name === "out") { scale = LARGE - (LARGE - SMALL) * done; }
    circle.dataset.phase = name;
    circle.style.transform = "scale(" + scale.toFixed(3) + ")";
    label.textContent = name;
  }
  function frame() {
    document.querySelectorAll("div.pacer").forEach(function (pacer) {
      if (!playerOf(pacer).paused) { pace(pacer); }
    });
    requestAnimationFrame(frame);
  }
  document.addEventListener("seeked", function (event) {  // media events do not bubble: caught on the way down
    var pacer = event.target.closest("section").querySelector("div.pacer");
    if (pacer) { pace(pacer); }
  }, true);
  requestAnimationFrame(frame);
  document.addEventListener("click", function (event) {
    // a click on a session's picture plays from that moment
    var svg = event.target.closest("div.picture svg");
    if (svg) {
      var box = svg.getBoundingClientRect();
      var x = (event.clientX - box.left) * svg.viewBox.baseVal.width / box.width;
      var at = (x - parseFloat(svg.dataset.x0)) / parseFloat(svg.dataset.width) * parseFloat(svg.dataset.length);
      var player = playerOf(svg);
      player.currentTime = Math.min(Math.max(at, 0), parseFloat(svg.dataset.length));
      player.play();
    }
    // a chapter button moves its track's player to the chapter's start
    var button = event.target.closest("button[data-start]");
    if (button) {
      var audio = playerOf(button);
      audio.currentTime = parseFloat(button.dataset.start);
      audio.play();
    }
  });"""

LENGTHS_STYLE = """  .lengths button { border: 1px solid #c9c2b8; background: #fff; border-radius: 6px; padding: .2rem .6rem;
                    cursor: pointer; font: inherit; margin-right: .3rem; }
  .lengths button[aria-pressed="true"] { background: #3d5a80; color: #fff; border-color: #3d5a80; }"""


def page_head(title: str, style: str, language: str = "en") -> str:
    """A page up to its body: the library page's and `guidetrack serve`'s. `title` is HTML."""
    return (f'<!doctype html>\n<html lang="{html.escape(language)}">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{title}</title>\n<style>\n{style}\n</style>\n</head>\n<body>\n")


def meta_line(track: Track) -> str:
    """What a class's card says under its title: length, level, teacher, props (HTML)."""
    e = html.escape
    meta = [format_clock(round(track.duration * SAMPLE_RATE))]
    meta += [e(x) for x in (track.level, track.author) if x]
    if track.props:
        meta.append("props: " + e(", ".join(track.props)))
    return " · ".join(meta)


PAGE = """{head}<header><img src="{cover}" alt=""><div><h1>{title}</h1><p class="meta">{count}{feed}</p>{about}</div></header>
{articles}
<script>
  // a class's length buttons show that variant, and pause the one shown before
  document.querySelectorAll("button.length").forEach(function (button) {{
    button.addEventListener("click", function () {{
      var article = button.closest("article");
      article.querySelectorAll("section.variant").forEach(function (section) {{
        var shown = section.dataset.variant === button.dataset.variant;
        if (!shown) {{ section.querySelector("audio").pause(); }}
        section.hidden = !shown;
      }});
      article.querySelectorAll("button.length").forEach(function (other) {{
        other.setAttribute("aria-pressed", String(other === button));
      }});
    }});
  }});
{player_script}
</script>
</body>
</html>
"""

ARTICLE = """<article id="{anchor}">
  <h2>{title}</h2>
  <p class="meta">{meta}</p>
  <p>{description}</p>{lengths}
{variants}
</article>"""

VARIANT = """  <section class="variant" data-variant="{variant}"{hidden}>
    <audio controls preload="metadata" src="{audio}">
      <track kind="captions" srclang="{language}" label="Transcript" src="{vtt}">
    </audio>
    <div class="picture" title="click to play from there">{picture}</div>{pacer}
    <ol class="chapters">{chapters}</ol>
    <details><summary>Transcript</summary>{transcript}</details>
    <p class="meta">Download: <a href="{audio}" download>the audio ({duration})</a> · <a class="transcript" href="{vtt}">captions for players (WebVTT)</a> · <a class="transcript" href="{srt}">subtitles for video editors (SRT)</a> · <a href="{chapters_file}">chapters (JSON)</a></p>
  </section>"""


def pacer_html(phases: list) -> str:
    """A breath pacer over the phases ([start, length, phase] in seconds) of the player in its section."""
    data = html.escape(json.dumps(phases, separators=(",", ":")))
    return f'<div class="pacer" data-phases="{data}"><div class="circle" data-phase=""></div><span class="phase"></span></div>'


def chapter_items(track: Track) -> str:
    """The track's chapters as list items, each a button that moves its player to the chapter."""
    return "".join(f'<li><button data-start="{c.start}">{format_clock(round(c.start * SAMPLE_RATE))}</button> '
                   f'{html.escape(c.title)}</li>' for c in track.chapters)


def prose(track: Track) -> str:
    """The transcript as a reader would want it: a paragraph a chapter under its heading, counted
    breaths joined ("In, two, three, four.")."""
    e = html.escape
    lines = track.spoken or tuple((0.0, text) for text in track.transcript)
    starts = [(c.start, c.title) for c in track.chapters] if track.spoken else []
    out: list[str] = []
    paragraph: list[str] = []
    run: list[str] = []

    def close_run() -> None:
        if run:
            paragraph.append(", ".join([run[0], *(w[:1].lower() + w[1:] for w in run[1:])]) + ".")
            run.clear()

    def close_paragraph() -> None:
        close_run()
        if paragraph:
            out.append(f"<p>{e(' '.join(paragraph))}</p>")
            paragraph.clear()

    for start, text in lines:
        while starts and starts[0][0] <= start + 0.0005:
            close_paragraph()
            out.append(f"<h4>{e(starts.pop(0)[1])}</h4>")
        words = text.split()
        if len(words) <= 2 and not text.rstrip().endswith((".", "!", "?")):
            run.append(text.strip().rstrip(","))
        else:
            close_run()
            paragraph.append(text)
    close_paragraph()
    return "".join(out)


def index_html(title: str, records: list[Record], feed: bool = False, settings: LibrarySettings = LibrarySettings(),
               cover: str = COVER, picture: Callable[[Record], str] = lambda record: "",
               pacer: Callable[[Record], str] = lambda record: "") -> str:
    """The library's page: a card a class, with a choice of length when it has variants (the main
    one first), each with its player, chapters, transcript and files."""
    e = html.escape
    articles = []
    groups = classes(records)
    for group in groups:
        main = group[0]
        track = main.track
        sections = []
        for index, record in enumerate(group):
            t = record.track
            sections.append(VARIANT.format(
                variant=e(t.variant), hidden="" if index == 0 else " hidden", language=e(t.language),
                duration=format_clock(round(t.duration * SAMPLE_RATE)),
                audio=e(record.url("audio")), vtt=e(record.url("vtt")), srt=e(record.url("srt")),
                chapters_file=e(record.url("chapters")), chapters=chapter_items(t), transcript=prose(t),
                picture=picture(record), pacer=pacer(record)))
        lengths = ""
        if len(group) > 1:
            buttons = "".join(
                f'<button class="length" data-variant="{e(r.track.variant)}" aria-pressed="{str(i == 0).lower()}">'
                f'{format_clock(round(r.track.duration * SAMPLE_RATE))} <small>{e(r.track.variant)}</small></button>'
                for i, r in enumerate(group))
            lengths = f'\n  <p class="lengths">Length: {buttons}</p>'
        articles.append(ARTICLE.format(anchor=e(main.script.rsplit(".", 1)[0]), title=e(class_title(main)), meta=meta_line(track),
                                       description=e(track.description), lengths=lengths,
                                       variants="\n".join(sections)))
    count = len(groups)
    about = f"<p>{e(settings.description)}</p>" if settings.description else ""
    head = page_head(e(title), PAGE_STYLE + "\n" + LENGTHS_STYLE, library_language(records, settings))
    return PAGE.format(head=head, player_script=PLAYER_SCRIPT, title=e(title), cover=cover, count=f"{count} class{'es' if count != 1 else ''}",
                       articles="\n".join(articles), about=about,
                       feed=f' · <a href="{FEED}">podcast feed</a>' if feed else "")
