"""`guidetrack serve`: a live preview of a library while its scripts are written.

A page per script shows its picture, problems, chapters, transcript and a player; the `Preview`
(preview.py) keeps them current. The server answers the pages, their parts as JSON, the audio
with byte ranges (a player seeks with them) and server-sent events telling each page that
something changed; the page then fetches its parts again and reloads its player at the same
position. The standard library's ThreadingHTTPServer is plenty for a teacher's browser on
loopback, and adds nothing to install.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .errors import GuidetrackError, Problem
from .files import temporary_folder
from .picture import session_svg
from .plan import Plan
from .preview import Audio, Entry, Preview
from .publish import PAGE_STYLE, PLAYER_SCRIPT, chapter_items, pacer_html, prose
from .render import track_of
from .script import FileKind
from .sidecars import breath_phases
from .units import format_clock

log = logging.getLogger(__name__)
KEEP_ALIVE = 15.0  # seconds between the comments that keep an idle event stream open


def page_state(preview: Preview, name: str, variant: str) -> dict | None:
    """What the page of one track shows, as HTML parts."""
    with preview.changed:
        entry = preview.entry(name)
        if entry is None:
            return None
        variant = variant if variant in entry.variants else (entry.variants[0] if entry.variants else "")
        plan = entry.plans.get(variant)
        audio = entry.audio.get(variant, Audio())
        problems = list(entry.problems)
        stale = bool(entry.errors) and plan is not None
        current = entry.keys.get(variant, "")
        parts = {"version": preview.version, "plan": f"{entry.version}", "title": entry.title,
                 "checked": entry.checked, "kind": entry.kind.value, "variant": variant,
                 "variants": entry.variants, "audio": audio.url or None,
                 "status": _status(entry, audio, current, plan)}
    parts["problems"] = _problems_html(problems, preview.folder, stale)
    if plan is None:
        parts.update(meta="", picture="", pacer="", chapters="", transcript="")
        return parts
    track = track_of(plan)
    script = plan.script
    meta = [format_clock(plan.length)] + [html.escape(x) for x in (script.level, script.author) if x]
    if script.props:
        meta.append("props: " + html.escape(", ".join(script.props)))
    phases = breath_phases(plan)
    parts.update(meta=" · ".join(meta), picture=session_svg(plan), pacer=pacer_html(phases) if phases else "",
                 chapters=chapter_items(track), transcript=prose(track))
    return parts


def index(preview: Preview) -> list[dict]:
    with preview.changed:
        return [{"name": e.name, "title": e.title, "kind": e.kind.value, "checked": e.checked,
                 "errors": len(e.errors), "warnings": len(e.problems) - len(e.errors),
                 "length": format_clock(next(iter(e.plans.values())).length) if e.plans else "",
                 "variants": e.variants}
                for e in sorted(preview.entries.values(), key=lambda e: e.name)]


def _status(entry: Entry, audio: Audio, current: str, plan: Plan | None) -> str:
    if not entry.checked:
        return "checking…"
    if plan is None:
        return "nothing to play until the problems above are mended"
    if entry.guessed:
        return "speaking the new words (the picture guesses their length until then)…"
    if audio.rendering:
        return "rendering the new version…" if audio.url else "rendering…"
    if audio.failed and audio.failed_key == current:
        return "the render failed: " + audio.failed
    if audio.url and audio.key != current:
        return "playing the last good version" if entry.errors else "waiting to render the new version…"
    return audio.figures or ("rendering…" if not audio.url else "")


def _problems_html(problems: list[Problem], folder: Path, stale: bool) -> str:
    if not problems:
        return ""
    items = []
    for problem in problems:
        where = ""
        if problem.where is not None:
            file = Path(problem.where.file)
            try:
                shown = file.resolve().relative_to(folder).as_posix()
            except ValueError:
                shown = str(file)
            where = f"<code>{html.escape(shown)}:{problem.where.line}:{problem.where.column}</code> "
        items.append(f'<li class="{problem.severity.value}">{where}{html.escape(problem.message)}</li>')
    note = ('<p class="meta">The picture and the player show the last save that worked, until this one is '
            'mended.</p>') if stale else ""
    return f'<ul class="problems">{"".join(items)}</ul>{note}'


# ---------------------------------------------------------------- the pages

STYLE = PAGE_STYLE + """
  nav { font-size: .9rem; }
  ul.problems { list-style: none; padding: 0; }
  ul.problems li { border-left: 4px solid #c8553d; background: #fff; padding: .4rem .75rem; margin: .4rem 0;
                   white-space: pre-wrap; }
  ul.problems li.warning { border-color: #e0a458; }
  ul.problems code, .status { font-size: .9rem; }
  .variants a { margin-right: .6rem; }
  .variants a[aria-current] { font-weight: 600; color: inherit; text-decoration: none; }
  table { border-collapse: collapse; width: 100%; }
  td { padding: .3rem .5rem; border-bottom: 1px solid #e6e0d8; }"""

SCRIPT_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
{style}
</style>
</head>
<body>
<nav><a href="/">{library}</a></nav>
<article>
<h2 id="title">{title}</h2>
<p class="meta" id="meta"></p>
<p class="variants" id="variants"></p>
<div id="problems"></div>
<section class="variant">
  <p class="meta status" id="status">checking…</p>
  <audio controls preload="metadata"></audio>
  <div class="picture" id="picture" title="click to play from there"></div>
  <div id="pacer"></div>
  <ol class="chapters" id="chapters"></ol>
  <details open><summary>Transcript</summary><div id="transcript"></div></details>
</section>
</article>
<script>
{player_script}
  // the preview: its parts are fetched again whenever the server says something changed, and the
  // player, given a new render, carries on from where it was
  var NAME = {name}, VARIANT = {variant}, shownPlan = null, shownAudio = null;
  var player = document.querySelector("audio");
  function part(id, content) {{ var element = document.getElementById(id); element.innerHTML = content; }}
  function load(url) {{
    var at = player.currentTime, playing = !player.paused && !player.ended;
    player.src = url;
    player.addEventListener("loadedmetadata", function () {{
      player.currentTime = Math.min(at, player.duration || at);
      if (playing) {{ player.play(); }}
    }}, {{once: true}});
  }}
  function refresh() {{
    fetch("/state/" + NAME + "?variant=" + encodeURIComponent(VARIANT)).then(function (r) {{ return r.json(); }})
      .then(function (state) {{
        part("problems", state.problems);
        document.getElementById("status").textContent = state.status;
        if (state.plan !== shownPlan) {{
          shownPlan = state.plan;
          document.title = state.title;
          document.getElementById("title").textContent = state.title;
          ["meta", "picture", "pacer", "chapters", "transcript"].forEach(function (id) {{ part(id, state[id]); }});
          part("variants", state.variants.length > 1 ? state.variants.map(function (v) {{
            return '<a href="?variant=' + encodeURIComponent(v) + '"' + (v === state.variant ? ' aria-current="page"' : "")
              + ">" + v + "</a>"; }}).join("") : "");
        }}
        if (state.audio && state.audio !== shownAudio) {{ shownAudio = state.audio; load(state.audio); }}
      }});
  }}
  new EventSource("/events").onmessage = refresh;  // it reconnects by itself if the server restarts
  refresh();
</script>
</body>
</html>
"""

INDEX_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{library}</title>
<style>
{style}
</style>
</head>
<body>
<h1>{library}</h1>
<p class="meta">Every save is checked at once; a page plays the newest render of its script.</p>
<table>{rows}</table>
<script>new EventSource("/events").onmessage = function () {{ location.reload(); }};</script>
</body>
</html>
"""


def script_page(preview: Preview, name: str, variant: str) -> str:
    return SCRIPT_PAGE.format(title=html.escape(name), style=STYLE, library=html.escape(preview.library.name),
                              player_script=PLAYER_SCRIPT, name=_js(quote(name)), variant=_js(variant))


def index_page(preview: Preview) -> str:
    rows = []
    for e in index(preview):
        if not e["checked"]:
            state = "checking…"
        elif e["errors"]:
            state = f'{e["errors"]} problem{"s" if e["errors"] > 1 else ""}'
        else:
            state = f'{e["warnings"]} warning{"s" if e["warnings"] > 1 else ""}' if e["warnings"] else "ok"
        link = (f'<a href="/s/{quote(e["name"])}">{html.escape(e["title"])}</a>' if e["kind"] == FileKind.SCRIPT.value
                else f'{html.escape(e["name"])} <span class="meta">(block)</span>')
        rows.append(f'<tr><td>{link}</td><td class="meta">{e["length"]}</td><td class="meta">{state}</td></tr>')
    return INDEX_PAGE.format(library=html.escape(preview.library.name), style=STYLE, rows="".join(rows))


def _js(text: str) -> str:
    return json.dumps(text).replace("<", "\\u003c")


class _Handler(BaseHTTPRequestHandler):
    preview: Preview  # set on the subclass `serve` makes
    server_version = "guidetrack"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        variant = query.get("variant", [""])[0]
        try:
            if path == "/":
                self._send(index_page(self.preview).encode(), "text/html; charset=utf-8")
            elif path.startswith("/s/"):
                name = path[3:]
                with self.preview.changed:
                    known = self.preview.entry(name) is not None
                if not known:
                    self._send(b"no such script in this library", "text/plain; charset=utf-8", HTTPStatus.NOT_FOUND)
                    return
                self._send(script_page(self.preview, name, variant).encode(), "text/html; charset=utf-8")
            elif path.startswith("/state/"):
                state = page_state(self.preview, path[7:], variant)
                if state is None:
                    self._send(b'{"gone": true}', "application/json", HTTPStatus.NOT_FOUND)
                    return
                self.preview.look(path[7:], state["variant"])
                self._send(json.dumps(state).encode(), "application/json")
            elif path == "/events":
                self._events()
            elif path.startswith("/audio/") and path.count("/") == 3:
                _, _, number, name = path.split("/")
                file = self.preview.audio_file(number, name)
                if file is None:
                    self._send(b"not found", "text/plain", HTTPStatus.NOT_FOUND)
                else:
                    self._send_file(file)
            else:
                self._send(b"not found", "text/plain", HTTPStatus.NOT_FOUND)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page went away

    def _send(self, body: bytes, mime: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", mime)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _send_file(self, file: Path) -> None:
        """The file, or the byte range asked for: a player seeks with ranges."""
        try:
            handle = file.open("rb")
        except OSError:
            self._send(b"not found", "text/plain", HTTPStatus.NOT_FOUND)
            return
        with handle:
            size = file.stat().st_size
            first, last = byte_range(self.headers.get("Range"), size)
            if first > last:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            partial = (first, last) != (0, size - 1) or self.headers.get("Range") is not None
            self.send_response(HTTPStatus.PARTIAL_CONTENT if partial else HTTPStatus.OK)
            self.send_header("Content-Type", "audio/mpeg")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(last - first + 1))
            if partial:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.end_headers()
            handle.seek(first)
            left = last - first + 1
            while left > 0:
                chunk = handle.read(min(left, 1 << 16))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)

    def _events(self) -> None:
        """Server-sent events: a message whenever anything in the library changes."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        seen = self.preview.version
        self.wfile.write(b"retry: 1000\n\n")
        self.wfile.flush()
        while not self.preview.stopping.is_set():
            version = self.preview.wait(seen, KEEP_ALIVE)
            self.wfile.write(f"data: {version}\n\n".encode() if version != seen else b": still here\n\n")
            self.wfile.flush()
            seen = version


def byte_range(header: str | None, size: int) -> tuple[int, int]:
    """The first and last byte a Range header asks for (the whole file without one, or with one
    this does not understand); first > last when the range lies outside the file."""
    whole = (0, size - 1)
    found = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header or "")
    if not found or found.groups() == ("", ""):
        return whole
    first, last = found.groups()
    if not first:  # the last N bytes
        return max(size - int(last), 0), size - 1
    return int(first), min(int(last), size - 1) if last else size - 1


def serve(library: Path, host: str = "127.0.0.1", port: int = 8000, cache_dir: Path | None = None,
          announce: Callable[[str], None] = print) -> None:
    """Serve the preview until interrupted (Ctrl-C, or SIGTERM)."""
    with temporary_folder("serve") as out:
        preview = Preview(library, out, cache_dir)
        handler = type("Handler", (_Handler,), {"preview": preview})
        try:
            server = ThreadingHTTPServer((host, port), handler)
        except OSError as err:
            raise GuidetrackError(f"cannot listen on {host}:{port} ({err.strerror or err}); "
                                  "choose another port with --port, or --port 0 for any free one") from None
        server.daemon_threads = True
        preview.start()
        address = f"http://{host if ':' not in host else f'[{host}]'}:{server.server_address[1]}/"
        announce(f"serving {library} at {address}  (Ctrl-C to stop)")
        try:
            server.serve_forever(poll_interval=0.5)
        finally:
            preview.stop()
            server.server_close()
