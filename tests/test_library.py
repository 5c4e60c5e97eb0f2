"""Issue 18: a library published as teachers expect: classes (not files), library settings, props."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mutagen.id3 import ID3

LIBRARY = Path(__file__).resolve().parent / "library"
SETTINGS = """guidetrack-library: 1
title: Evening Studio
author: Mara Quinn
owner: {name: Mara Quinn, email: mara@example.org}
copyright: © 2026 Mara Quinn
description: Short evening classes for winding down.
base_url: https://studio.example/classes/
"""
NO_AUTHOR = """guidetrack: 1
title: Wall Rest
voice: calm
props: [a wall, a folded blanket]
level: all levels
steps:
  - say: Rest your legs up the wall. Count with me.
  - breathe: {pattern: equal, cycles: 1, cue: count}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("lib")
    library = root / "library"
    shutil.copytree(LIBRARY, library)
    (library / "library.yaml").write_text(SETTINGS)
    (library / "wall.yaml").write_text(NO_AUTHOR)
    out = root / "out"
    done = subprocess.run([sys.executable, "-m", "guidetrack", "build", str(library), "-o", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return library, out


@pytest.mark.integration
def test_the_page_has_a_card_a_class_with_its_lengths_main_first(built):
    _, out = built
    page = (out / "index.html").read_text()
    assert "<p class=\"meta\">3 classes · <a href=\"feed.xml\">podcast feed</a></p>" in page
    assert page.count("<article ") == 3 and page.count('<section class="variant"') == 4
    breath = page[page.index('<article id="breath"'):]
    breath = breath[: breath.index("</article>")]
    assert re.findall(r'data-variant="(\w+)" aria-pressed="(\w+)"', breath) == [("short", "true"), ("long", "false")]
    assert '<section class="variant" data-variant="long" hidden>' in breath
    assert "<h2>Breath Break</h2>" in breath  # the class's title, without a variant's
    wall = page[page.index('<article id="wall"'):]
    assert "all levels" in wall[:400] and "props: a wall, a folded blanket" in wall[:400]
    assert "captions for players (WebVTT)" in page and "subtitles for video editors (SRT)" in page
    transcript = re.search(r"<details><summary>Transcript</summary>(.*?)</details>", wall).group(1)
    assert transcript == "<p>Rest your legs up the wall. Count with me. In, two, three, four, out, two, three, four.</p>"


@pytest.mark.integration
def test_the_feed_and_tags_take_the_librarys_settings(built):
    import feedparser

    library, out = built
    feed = feedparser.parse((out / "feed.xml").read_text())
    assert feed.feed.title == "Evening Studio" and feed.feed.rights == "© 2026 Mara Quinn"
    assert feed.feed.author_detail.email == "mara@example.org" or "mara@example.org" in (out / "feed.xml").read_text()
    assert "<itunes:name>Mara Quinn</itunes:name>" in (out / "feed.xml").read_text()
    tags = ID3(out / "wall.mp3")
    assert str(tags["TPE1"]) == "Mara Quinn" and str(tags["TALB"]) == "Evening Studio"  # the library's, as defaults
    assert str(ID3(out / "breath-short.mp3")["TPE1"]) == "Test Studio"  # the script's own wins


@pytest.mark.integration
def test_a_broken_library_file_stops_the_build_at_its_line(tmp_path):
    library = tmp_path / "library"
    shutil.copytree(LIBRARY, library)
    (library / "library.yaml").write_text("guidetrack-library: 1\nowner: {email: nope}\n")
    done = subprocess.run([sys.executable, "-m", "guidetrack", "build", str(library), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "library.yaml:2:16: owner.email: 'nope' is not an email address" in done.stderr
    assert not (tmp_path / "out" / "index.html").exists()


@pytest.mark.integration
def test_a_build_works_with_a_long_temporary_folder_path(tmp_path):
    import os

    long = tmp_path / ("t" * 100)  # a Unix socket's path may not be over 107 bytes
    long.mkdir()
    library = tmp_path / "library"
    shutil.copytree(LIBRARY, library)
    done = subprocess.run([sys.executable, "-m", "guidetrack", "build", str(library), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, env={**os.environ, "TMPDIR": str(long)})
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
