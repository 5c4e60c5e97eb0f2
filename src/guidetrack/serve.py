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
import os
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
from .publish import PAGE_STYLE, PLAYER_SCRIPT, chapter_items, meta_line, pacer_html, page_head, prose
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
        variant = entry.variant(variant)
        plan = entry.plans.get(variant)
        audio = entry.audio.get(variant, Audio())
        problems = list(entry.problems)
        stale = bool(entry.errors) and plan is not None
        current = entry.keys.get(variant, "")
        parts = {"plan": f"{entry.version}", "title": entry.title, "checked": entry.checked, "variant": variant,
                 "variants": entry.variants, "audio": audio.url or None,
                 "status": _status(entry, audio, current, plan)}
    parts["problems"] = _problems_html(problems, preview.folder, stale)
    if plan is None:
        parts.update(meta="", picture="", pacer="", chapters="", transcript="")
        return parts
    track = track_of(plan)
    phases = breath_phases(plan)
    parts.update(meta=meta_line(track), picture=session_svg(plan), pacer=pacer_html(phases) if phases else "",
                 chapters=chapter_items(track), transcript=prose(track))
    return parts


def index(preview: Preview) -> list[dict]:
    with preview.changed:
        return [{"name": e.name, "title": e.title, "kind": e.kind.value, "checked": e.checked,
                 "errors": len(e.errors), "warnings": len(e.problems) - len(e.errors),
                 "length": format_clock(next(iter(e.plans.values())).length) if e.plans else ""}
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

SCRIPT_PAGE = """{head}<nav><a href="/">{library}</a></nav>
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
  var NAME = {name}, VARIANT = {variant}, shownPlan = null, shownAudio = null, busy = false, again = false;
  var player = document.querySelector("audio");
  function part(id, content) {{ document.getElementById(id).innerHTML = content; }}
  function load(url) {{
    var at = player.currentTime, playing = !player.paused && !player.ended;
    player.src = url;
    player.addEventListener("loadedmetadata", function () {{
      player.currentTime = Math.min(at, player.duration || at);
      if (playing) {{ player.play(); }}
    }}, {{once: true}});
  }}
  function show(state) {{
    if (state.gone) {{
      document.getElementById("status").textContent = "This script is no longer in the library.";
      return;
    }}
    part("problems", state.problems);
    document.getElementById("status").textContent = state.status;
    if (state.plan !== shownPlan) {{
      shownPlan = state.plan;
      document.title = state.title;
      document.getElementById("title").textContent = state.title;
      ["meta", "picture", "pacer", "chapters", "transcript"].forEach(function (id) {{ part(id, state[id]); }});
      var links = document.getElementById("variants");
      links.replaceChildren();
      if (state.variants.length > 1) {{
        state.variants.forEach(function (v) {{
          var a = document.createElement("a");
          a.href = "?variant=" + encodeURIComponent(v);
          a.textContent = v;
          if (v === state.variant) {{ a.setAttribute("aria-current", "page"); }}
          links.append(a);
        }});
      }}
    }}
    if (state.audio && state.audio !== shownAudio) {{ shownAudio = state.audio; load(state.audio); }}
  }}
  function refresh() {{  // one request at a time, so an older answer never replaces a newer one
    if (busy) {{ again = true; return; }}
    busy = true;
    fetch("/state/" + NAME + "?variant=" + encodeURIComponent(VARIANT))
      .then(function (r) {{ return r.json(); }}).then(show)
      .catch(function () {{}})  // the server is restarting: the event stream brings the next try
      .finally(function () {{ busy = false; if (again) {{ again = false; refresh(); }} }});
  }}
  // it says at once what there is, and whenever anything changes; it reconnects by itself
  new EventSource("/events?script=" + NAME + "&variant=" + encodeURIComponent(VARIANT)).onmessage = refresh;
</script>
</body>
</html>
"""

INDEX_PAGE = """{head}<h1>{library}</h1>
<p class="meta">Every save is checked at once; a page plays the newest render of its script.</p>
<table>{rows}</table>
<script>new EventSource("/events").onmessage = function () {{ location.reload(); }};</script>
</body>
</html>
"""


def script_page(preview: Preview, name: str, variant: str) -> str:
    return SCRIPT_PAGE.format(head=page_head(html.escape(name), STYLE), title=html.escape(name),
                              library=html.escape(preview.library.name),
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
    name = html.escape(preview.library.name)
    return INDEX_PAGE.format(head=page_head(name, STYLE), library=name, rows="".join(rows))


def _js(text: str) -> str:
    return json.dumps(text).replace("<", "\\u003c")


LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


class _Handler(BaseHTTPRequestHandler):
    preview: Preview  # set on the subclass `serve` makes
    loopback: bool = True  # served on loopback: only requests that name it (no DNS rebinding)
    server_version = "guidetrack"
    head = False

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_HEAD(self) -> None:
        self.head = True
        self.do_GET()

    def do_GET(self) -> None:
        try:
            self._answer()
        except ConnectionError:
            pass  # the page went away

    def _answer(self) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        variant = query.get("variant", [""])[0]
        host = self.headers.get("Host") or ""
        host = host[1:].split("]")[0] if host.startswith("[") else host.split(":")[0]
        if self.loopback and host.lower() not in LOOPBACK_NAMES:
            self._send(b"this preview answers only to localhost", "text/plain", HTTPStatus.FORBIDDEN)
        elif path == "/":
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
            self._events(query.get("script", [""])[0], variant)
        else:
            file = self.preview.audio_file(url.path) if path.startswith("/audio/") else None
            if file is None:
                self._send(b"not found", "text/plain", HTTPStatus.NOT_FOUND)
            else:
                self._send_file(file)

    def _send(self, body: bytes, mime: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", mime)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not self.head:
            self.wfile.write(body)

    def _send_file(self, file: Path) -> None:
        """The file, or the byte range asked for: a player seeks with ranges."""
        try:
            handle = file.open("rb")
        except OSError:
            self._send(b"not found", "text/plain", HTTPStatus.NOT_FOUND)
            return
        with handle:
            size = os.fstat(handle.fileno()).st_size
            asked = byte_range(self.headers.get("Range"), size)
            if asked is not None and asked[0] >= size:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            first, last = asked or (0, size - 1)
            self.send_response(HTTPStatus.OK if asked is None else HTTPStatus.PARTIAL_CONTENT)
            self.send_header("Content-Type", "audio/mpeg")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(last - first + 1))
            if asked is not None:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.end_headers()
            if self.head:
                return
            handle.seek(first)
            left = last - first + 1
            while left > 0:
                chunk = handle.read(min(left, 1 << 16))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)

    def _events(self, name: str, variant: str) -> None:
        """Server-sent events: a message at once (a page that reconnects catches up), then
        whenever anything in the library changes. While it is open, its page counts as looked at."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.head:
            return
        seen = self.preview.version
        self.wfile.write(f"retry: 1000\ndata: {seen}\n\n".encode())
        self.wfile.flush()
        while not self.preview.stopping.is_set():
            if name:
                self.preview.look(name, variant)
            version = self.preview.wait(seen, KEEP_ALIVE)
            self.wfile.write(f"data: {version}\n\n".encode() if version != seen else b": still here\n\n")
            self.wfile.flush()
            seen = version


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        log.exception("answering %s failed", client_address)  # the server goes on


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The first and last byte a Range header asks for; None for the whole file (no header, or
    one this does not understand or that asks for nothing, which RFC 9110 says to ignore). A
    first byte at or past the end is for a 416."""
    found = re.fullmatch(r"\s*bytes\s*=\s*(\d{0,18})\s*-\s*(\d{0,18})\s*", header or "")
    if not found or found.groups() == ("", ""):
        return None
    first, last = found.groups()
    if not first:  # the last N bytes
        return (max(size - int(last), 0), size - 1) if int(last) > 0 and size > 0 else None
    if last and int(last) < int(first):
        return None
    return int(first), min(int(last), size - 1) if last else size - 1


def serve(library: Path, host: str = "127.0.0.1", port: int = 8000, cache_dir: Path | None = None,
          announce: Callable[[str], None] = print) -> None:
    """Serve the preview until interrupted (Ctrl-C, or SIGTERM)."""
    with temporary_folder("serve") as out:
        preview = Preview(library, out, cache_dir)
        loopback = host in LOOPBACK_NAMES or host.startswith("127.")
        handler = type("Handler", (_Handler,), {"preview": preview, "loopback": loopback})
        try:
            server = _Server((host, port), handler)
        except OSError as err:
            raise GuidetrackError(f"cannot listen on {host}:{port} ({err.strerror or err}); "
                                  "choose another port with --port, or --port 0 for any free one") from None
        preview.start()
        address = f"http://{host if ':' not in host else f'[{host}]'}:{server.server_address[1]}/"
        announce(f"serving {library} at {address}  (Ctrl-C to stop)")
        try:
            server.serve_forever(poll_interval=0.5)
        finally:
            preview.stop()
            server.server_close()
