"""`guidetrack build` on tests/library (two scripts, three short renders), with the real engine
and encoder: layout, incremental rebuilds, failures, interruption, the shared clip cache, the
published catalog and feed, index.html in headless Chromium, and a Dask cluster on loopback."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import (
    LIBRARY,
    ROOT,
    chromium,
    decode,
    ffprobe_duration,
    guidetrack,
    needs_chromium,
    needs_dask,
    needs_feedparser,
)
from meter import lufs, true_peak

pytestmark = pytest.mark.integration

OUTPUTS = {"breath-short.mp3", "breath-long.mp3", "evening/wind-down.mp3"}


@pytest.fixture
def library(tmp_path) -> Path:
    copy = tmp_path / "library"
    shutil.copytree(LIBRARY, copy)
    return copy


@pytest.fixture(scope="module")
def built(run_once, cache_dir) -> tuple[Path, Path]:
    """(library, out): a copy of tests/library built once in the run, for the tests that read a
    finished build (they leave both as they are)."""

    def make(folder):
        shutil.copytree(LIBRARY, folder / "library")
        guidetrack("build", folder / "library", "-o", folder / "out", cache=cache_dir, check=True)

    folder = run_once("built-library", make)
    return folder / "library", folder / "out"


def summary(result) -> dict:
    return json.loads(result.stdout)


def manifest(out: Path) -> dict:
    return json.loads((out / "build-manifest.json").read_text())


@pytest.mark.slow(55)
def test_build_mirrors_the_library_and_rebuilds_only_what_changed(gt, library, tmp_path):
    out = tmp_path / "out"
    first = gt("build", library, "-o", out, "--json", "--jobs", "2")
    assert first.returncode == 0, first.stderr
    assert set(summary(first)["built"]) == OUTPUTS
    for name in OUTPUTS:  # the layout of the library, each with its sidecars, the planned length
        audio = out / name
        entry = manifest(out)["outputs"][name]
        assert abs(ffprobe_duration(audio) - entry["track"]["duration"]) < 0.1
        for kind in ("vtt", "srt", "chapters"):
            assert (out / entry["files"][kind]["path"]).is_file()
    assert manifest(out)["outputs"]["breath-short.mp3"]["track"]["duration"] == 26.0

    again = gt("build", library, "-o", out, "--json")
    assert summary(again)["built"] == [] and set(summary(again)["skipped"]) == OUTPUTS
    assert "0 built, 3 up to date, 0 failed" in again.stderr

    # a shared block changes: both scripts that include it; a script's own text: its variants only
    block = library / "poses" / "rest.yaml"
    block.write_text(block.read_text().replace("Let the whole body rest.", "Let the whole body grow heavy."))
    assert set(summary(gt("build", library, "-o", out, "--json"))["built"]) == OUTPUTS
    script = library / "evening" / "wind-down.yaml"
    script.write_text(script.read_text().replace("let the day go", "let the whole day go"))
    assert summary(gt("build", library, "-o", out, "--json"))["built"] == ["evening/wind-down.mp3"]
    # a voice profile in the library's voices/ folder is an input too
    (library / "voices").mkdir()
    (library / "voices" / "calm.yaml").write_text("guidetrack-voice: 1\nengine: pyttsx3\nvoice: en-us\nrate: 128\n")
    (library / "voices" / "gentle.yaml").write_text("guidetrack-voice: 1\nengine: hibari\nvoice: heart\nrate: 128\n")
    assert set(summary(gt("build", library, "-o", out, "--json"))["built"]) == OUTPUTS
    # touching a file changes nothing: content decides, not modification times
    os.utime(script, (time.time() + 60, time.time() + 60))
    assert summary(gt("build", library, "-o", out, "--json"))["built"] == []
    # an output deleted by hand is made again; --force makes all
    (out / "breath-long.mp3").unlink()
    assert summary(gt("build", library, "-o", out, "--json"))["built"] == ["breath-long.mp3"]
    assert set(summary(gt("build", library, "-o", out, "--json", "--force"))["built"]) == OUTPUTS
    # a script removed: its outputs go, from the folder and the catalog
    script.unlink()
    gone = summary(gt("build", library, "-o", out, "--json"))
    assert gone["removed"] == ["evening/wind-down.mp3"] and not (out / "evening" / "wind-down.mp3").exists()
    assert [t["id"] for t in json.loads((out / "catalog.json").read_text())["tracks"]] == [
        "breath-long.mp3", "breath-short.mp3"]


def test_a_failing_script_does_not_stop_the_others(gt, library, tmp_path):
    (library / "broken.yaml").write_text("guidetrack: 1\ntitle: Broken\nsteps:\n  - breathe: {cycles: many}\n")
    (library / "unfittable.yaml").write_text("guidetrack: 1\ntitle: Too short\nduration: 1s\n"
                                             "steps:\n  - say: This cannot fit in one second.\n")
    out = tmp_path / "out"
    result = gt("build", library, "-o", out, "--json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    report = summary(result)
    assert set(report["built"]) == OUTPUTS
    failed = {f["what"]: f["message"] for f in report["failed"]}
    assert set(failed) == {"broken.yaml", "unfittable.mp3"}
    assert "broken.yaml:4:" in failed["broken.yaml"] and "cycles" in failed["broken.yaml"]
    assert "cannot fit duration" in failed["unfittable.mp3"]
    # the closing table lists each failure with its message
    assert "failed  broken.yaml" in result.stderr and "3 built, 0 up to date, 2 failed" in result.stderr
    assert not (out / "unfittable.mp3").exists()


def test_an_interrupted_build_leaves_no_partial_file_and_the_next_continues(tmp_path, cache_dir):
    # three classes of a minute and a half each: once the first is built, the other two take
    # seconds, however fast a render is (tests/library's take under a second each now that MP3
    # encodes on every core, and a busy machine could let them finish before the Ctrl-C landed)
    library = tmp_path / "library"
    library.mkdir()
    for name in ("dawn", "noon", "dusk"):
        (library / f"{name}.yaml").write_text(
            f"guidetrack: 1\ntitle: {name.title()} Rest\nvoice: calm\nduration: 90s\n"
            "background: {sound: pink-noise, level: -24}\n"
            f"steps:\n  - say: Rest now, in the quiet of the {name}.\n  - hold: {{for: 80s, min: 10s, max: 120s}}\n")
    outputs = {"dawn.mp3", "noon.mp3", "dusk.mp3"}
    out = tmp_path / "out"
    env = {**os.environ, "GUIDETRACK_CACHE_DIR": str(cache_dir)}
    process = subprocess.Popen([sys.executable, "-m", "guidetrack", "build", str(library), "-o", str(out),
                                "--jobs", "1"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    # Ctrl-C as soon as the first class is built and in the manifest (its "[1/3]" line is printed
    # after that), while the next renders: waiting on the line, not polling the manifest, so a
    # busy machine (pytest-xdist) cannot let the build finish before the signal
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith("[1/"):
            break
    assert _built(out), "".join(seen)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group, as in a terminal
    _, rest = process.communicate(timeout=60)
    stderr = "".join(seen) + rest
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    done = _built(out)
    assert 1 <= len(done) < 3
    assert not list(out.rglob("*.part"))
    audio = [p for p in out.rglob("*.mp3")]
    assert {p.relative_to(out).as_posix() for p in audio} == done  # nothing at an output path but whole renders
    for path in audio:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest(out)["outputs"][
            path.relative_to(out).as_posix()]["files"]["audio"]["sha256"]
    resumed = subprocess.run([sys.executable, "-m", "guidetrack", "build", str(library), "-o", str(out), "--json"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert set(summary(resumed)["built"]) == outputs - done and set(summary(resumed)["skipped"]) == done


def _built(out: Path) -> set[str]:
    try:
        return set(manifest(out)["outputs"])
    except (OSError, ValueError):
        return set()


@pytest.mark.slow(20)
def test_concurrent_builds_share_one_clip_cache_safely(library, tmp_path):
    """Two builds at once, from a cold cache, make the same clips: every entry stays whole."""
    from guidetrack.speech import ClipCache

    cache = tmp_path / "cache"
    env = {**os.environ, "GUIDETRACK_CACHE_DIR": str(cache)}
    runs = [subprocess.Popen([sys.executable, "-m", "guidetrack", "build", str(library), "-o", str(tmp_path / f"out{i}"),
                              "--jobs", "2"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for run in runs:
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
    entries = list(cache.glob("*.wav"))
    assert len(entries) >= 5
    reader = ClipCache(cache)
    assert all(reader.get(entry) is not None for entry in entries) and reader.repaired == 0
    assert not list(cache.rglob("*.part"))
    one, two = (decode(tmp_path / f"out{i}" / "breath-short.mp3") for i in range(2))
    assert one.shape == two.shape


@needs_feedparser
def test_the_published_catalog_and_feed(gt, built, tmp_path):
    import feedparser

    library, out = built[0], tmp_path / "out"
    shutil.copytree(built[1], out)  # the library built, then built again with an address to publish at
    gt("build", library, "-o", out, "--base-url", "https://studio.example/classes", check=True)
    catalog = json.loads((out / "catalog.json").read_text())
    assert catalog["title"] == "Test Library"
    assert {t["id"] for t in catalog["tracks"]} == OUTPUTS
    for track in catalog["tracks"]:
        for file in track["files"].values():  # every file listed is there, with its size and checksum
            data = (out / file["path"]).read_bytes()
            assert len(data) == file["bytes"] and hashlib.sha256(data).hexdigest() == file["sha256"]
        assert track["chapters"] and track["duration"] > 10
        # the loudness printed in the catalog is the file's, by an independent meter
        audio = decode(out / track["files"]["audio"]["path"])
        assert abs(track["loudness"]["integrated_lufs"] - lufs(audio)) <= 0.2, track["loudness"]
        assert abs(track["loudness"]["speech_lufs"] - (-16.0)) <= 0.5 and true_peak(audio) <= -1.0

    feed = feedparser.parse((out / "feed.xml").read_bytes())
    assert not feed.bozo, feed.bozo_exception
    assert feed.feed.title == "Test Library" and feed.feed.image.href == "https://studio.example/classes/cover.png"
    assert len(feed.entries) == 3
    by_title = {e.title: e for e in feed.entries}
    entry = by_title["Breath Break (short)"]
    enclosure = entry.enclosures[0]
    assert enclosure.href == "https://studio.example/classes/breath-short.mp3"
    assert int(enclosure.length) == (out / "breath-short.mp3").stat().st_size and enclosure.type == "audio/mpeg"
    assert entry.itunes_duration == "26"
    assert by_title["Wind Down"].enclosures[0].href == "https://studio.example/classes/evening/wind-down.mp3"

    from xml.etree import ElementTree as ET

    podcast = "{https://podcastindex.org/namespace/1.0}"
    items = ET.parse(out / "feed.xml").getroot().findall("channel/item")
    for item in items:
        chapters = item.find(f"{podcast}chapters")
        assert chapters.get("type") == "application/json+chapters"
        transcripts = {t.get("type"): t.get("url") for t in item.findall(f"{podcast}transcript")}
        assert set(transcripts) == {"text/vtt", "application/x-subrip"}
        for url in [chapters.get("url"), *transcripts.values()]:  # each link names a file that is there
            assert (out / url.removeprefix("https://studio.example/classes/")).is_file(), url
    # a later build without --base-url keeps the feed's address
    gt("build", library, "-o", out, check=True)
    assert "https://studio.example/classes/breath-short.mp3" in (out / "feed.xml").read_text()


@needs_chromium
def test_index_html_plays_every_track_and_loads_every_transcript_in_chromium(built, tmp_path):
    out = built[1]
    with chromium(tmp_path) as driver:
        driver.get((out / "index.html").as_uri())
        report = driver.execute_async_script(CHECK_PAGE)
    catalog = {t["files"]["audio"]["path"]: t for t in json.loads((out / "catalog.json").read_text())["tracks"]}
    assert report["titles"] == ["Breath Break", "Wind Down"]  # a card a class, not a file
    assert len(report["players"]) == 3  # one for each variant
    for player in report["players"]:  # every player's source loaded, with the track's length
        assert player["error"] is None and player["duration"] is not None, player
        track = catalog[player["src"].split("/out/", 1)[1]]
        assert abs(player["duration"] - track["duration"]) < 0.2 and player["variant"] == track["variant"], player
        assert player["cues"] >= 2, player  # its captions track loaded, cue by cue
    assert report["switched"] == {"short": True, "long": False}  # a click on a length shows that variant
    picture = report["picture"]  # the picture shows every chapter, and a click on it seeks its player
    wind_down = catalog["evening/wind-down.mp3"]
    assert [c.rsplit(" (", 1)[0] for c in picture["chapters"]] == [c["title"] for c in wind_down["chapters"]]
    assert abs(picture["at"] - picture["length"] / 2) < 0.5, picture
    pacer = report["pacer"]  # during an in-breath of a playing track, the circle is in-breath sized
    assert pacer["playing"] and pacer["phase"] == "in", pacer
    scale = float(pacer["transform"].removeprefix("scale(").removesuffix(")"))
    expected = 0.35 + 0.65 * (pacer["at"] - pacer["start"]) / pacer["length"]
    assert 0.35 < scale < 1.0 and abs(scale - expected) < 0.15, pacer
    assert len(report["transcripts"]) == 6
    for link in report["transcripts"]:  # every transcript link loads
        assert link["ok"] and link["length"] > 20, link


CHECK_PAGE = """
const done = arguments[arguments.length - 1];
const articles = [...document.querySelectorAll("article")];
const sections = [...document.querySelectorAll("section.variant")];
const players = sections.map(section => new Promise(resolve => {
  const audio = section.querySelector("audio");
  const track = audio.querySelector("track");
  track.track.mode = "hidden";  // makes the browser load the captions
  const began = Date.now();
  const poll = () => {
    const settled = (audio.readyState >= 1 || audio.error) && track.readyState >= 2;
    if (!settled && Date.now() - began < 30000) { setTimeout(poll, 100); return; }
    resolve({variant: section.dataset.variant, src: audio.currentSrc,
      duration: audio.duration, error: audio.error && audio.error.code, ready: audio.readyState,
      trackState: track.readyState, cues: track.track.cues ? track.track.cues.length : -1});
  };
  poll();
}));
const transcripts = [...document.querySelectorAll("a.transcript")].map(a =>
  fetch(a.href).then(r => r.text().then(t => ({href: a.href, ok: r.ok || r.status === 0, length: t.length})))
    .catch(e => ({href: a.href, ok: false, length: 0, error: String(e)})));
const breath = articles[0];
breath.querySelector('button.length[data-variant="long"]').click();
const switched = {short: breath.querySelector('section[data-variant="short"]').hidden,
                  long: breath.querySelector('section[data-variant="long"]').hidden};
function clickPicture() {  // a click halfway along the last class's picture
  const svg = articles[articles.length - 1].querySelector("div.picture svg");
  const box = svg.getBoundingClientRect();
  const vx = parseFloat(svg.dataset.x0) + 0.5 * parseFloat(svg.dataset.width);
  svg.dispatchEvent(new MouseEvent("click", {bubbles: true, clientX: box.left + vx * box.width / svg.viewBox.baseVal.width,
                                             clientY: box.top + 10}));
  const audio = svg.closest("section").querySelector("audio");
  return {length: parseFloat(svg.dataset.length), at: audio.currentTime,
          chapters: [...svg.querySelectorAll("g.chapter title")].map(t => t.textContent)};
}
function checkPacer() {  // play from the middle of the first in-breath: the circle grows
  const pacer = document.querySelector('section[data-variant="short"] div.pacer');
  const first = JSON.parse(pacer.dataset.phases).find(p => p[2] === "in");
  const audio = pacer.closest("section").querySelector("audio");
  audio.currentTime = first[0] + first[1] / 2;
  return audio.play().then(() => new Promise(resolve => setTimeout(() => {
    const circle = pacer.querySelector(".circle");
    const state = {phase: circle.dataset.phase, transform: circle.style.transform, at: audio.currentTime,
                   start: first[0], length: first[1], playing: !audio.paused};
    audio.pause();
    resolve(state);
  }, 400)));
}
Promise.all([Promise.all(players), Promise.all(transcripts)]).then(([p, t]) => {
  const picture = clickPicture();
  checkPacer().then(pacer =>
    done({titles: articles.map(a => a.querySelector("h2").textContent), players: p, transcripts: t, switched,
          picture, pacer}));
});
"""


@pytest.mark.slow(20)
@needs_dask
def test_a_build_on_a_dask_cluster(library, tmp_path, cache_dir, monkeypatch):
    """A local Dask cluster on loopback, started here: the renders run on its workers, the
    outputs and the manifest are written by the build."""
    from distributed import LocalCluster

    # A scheduler nobody listens on: guidetrack waits its 20 s connect timeout, idle, so that
    # build runs beside the cluster's (same checks, 20 s less of a test worker's time)
    down = subprocess.Popen([sys.executable, "-m", "guidetrack", "build", str(library), "-o", str(tmp_path / "o2"),
                             "--scheduler", "tcp://127.0.0.1:9"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "GUIDETRACK_CACHE_DIR": str(cache_dir)})
    try:
        monkeypatch.setenv("GUIDETRACK_CACHE_DIR", str(cache_dir))  # the workers' own clip cache
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster:
            out = tmp_path / "out"
            result = subprocess.run([sys.executable, "-m", "guidetrack", "build", str(library), "-o", str(out),
                                     "--scheduler", cluster.scheduler_address, "--json"],
                                    cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=300)
            assert result.returncode == 0, result.stderr
            assert set(summary(result)["built"]) == OUTPUTS
            from distributed import Client

            with Client(cluster) as client:
                pids = set(client.run(os.getpid).values())
            workers = {int(worker.rsplit(":", 1)[1]) for worker in summary(result)["workers"].values()}
            assert len(workers) >= 1 and set(summary(result)["workers"]) == OUTPUTS
            assert workers <= pids, (workers, pids)  # rendered on the cluster's workers
            for name in OUTPUTS:
                assert abs(ffprobe_duration(out / name) - manifest(out)["outputs"][name]["track"]["duration"]) < 0.1
    except BaseException:
        down.kill()
        raise
    _, stderr = down.communicate(timeout=120)
    assert down.returncode == 1 and "cannot reach the Dask scheduler" in stderr and "Traceback" not in stderr


def test_a_build_removes_only_its_own_files_inside_its_folder(gt, tmp_path):
    """Issue 19: a manifest naming paths outside the output folder (absolute, `../`) or files
    changed since, an empty or different library built into the folder, and a live writer's
    temporary file: none of them is deleted."""
    lib, other, out = tmp_path / "lib", tmp_path / "other", tmp_path / "out"
    for folder in (lib, other):
        folder.mkdir()
        (folder / "rest.yaml").write_text("guidetrack: 1\ntitle: Rest\nsteps:\n  - say: Rest.\n")
    gt("build", lib, "-o", out, check=True)
    assert (out / "rest.mp3").is_file()
    assert gt("build", other, "-o", out).returncode == 2  # another library's folder
    empty = tmp_path / "empty"
    empty.mkdir()
    result = gt("build", empty, "-o", out)
    assert result.returncode == 2 and "would remove the 1 classes there" in result.stderr
    assert (out / "rest.mp3").is_file()

    victims = [tmp_path / "victim.txt", tmp_path / "absolute.txt"]
    for victim in victims:
        victim.write_text("keep me")
    data = manifest(out)
    forged = dict(data["outputs"]["rest.mp3"])
    forged["script"] = "gone.yaml"
    forged["files"] = {"audio": {"path": "../victim.txt", "bytes": 7, "sha256": "0" * 64},
                       "vtt": {"path": str(victims[1]), "bytes": 7, "sha256": "0" * 64}}
    data["outputs"]["gone.mp3"] = forged
    (out / "edited.mp3").write_text("a file changed since the build wrote it")
    data["outputs"]["gone-too.mp3"] = {**forged, "files": {"audio": {"path": "edited.mp3", "bytes": 1,
                                                                     "sha256": "0" * 64}}}
    (out / "build-manifest.json").write_text(json.dumps(data))
    live = out / f".rest.mp3.{os.getpid()}.abcd1234.part"  # this process is alive: a live writer
    dead = out / ".rest.mp3.999999999.abcd1234.part"
    young = out / ".rest.mp3.999999998.abcd1234.part"  # a writer we cannot see, still writing
    other = out / ".download.part"  # not guidetrack's
    for temp in (live, dead, young, other):
        temp.write_text("partial")
    for temp in (live, dead, other):
        os.utime(temp, (time.time() - 3600, time.time() - 3600))
    gt("build", lib, "-o", out, check=True)
    assert all(victim.read_text() == "keep me" for victim in victims)
    assert (out / "edited.mp3").is_file() and live.is_file() and young.is_file() and other.is_file()
    assert not dead.exists()
    assert set(manifest(out)["outputs"]) == {"rest.mp3"}
    gt("build", empty, "-o", out, "--force", check=True)  # asked for: the class goes
    assert not (out / "rest.mp3").exists() and manifest(out)["outputs"] == {}


def test_two_scripts_that_would_share_a_file_are_both_reported(gt, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("wind down.yaml", "wind-down.yaml"):
        (lib / name).write_text("guidetrack: 1\ntitle: Wind down\nsteps:\n  - say: Rest.\n")
    (lib / "breath.yaml").write_text("guidetrack: 1\ntitle: B\nvariants: {short: 1m, long: 2m}\n"
                                     "steps:\n  - hold: {for: 1m, min: 10s, max: 3m}\n")
    (lib / "breath-short.yaml").write_text("guidetrack: 1\ntitle: B\nsteps:\n  - say: Rest.\n")
    result = gt("build", lib, "-o", tmp_path / "out", "--json")
    assert result.returncode == 1, result.stderr
    report = summary(result)
    assert report["built"] == ["breath-long.mp3"]
    failed = {f["what"]: f["message"] for f in report["failed"]}
    assert set(failed) == {"wind down.yaml", "wind-down.yaml", "breath.yaml", "breath-short.yaml"}, failed
    assert "wind down.yaml and wind-down.yaml would both be written to wind-down.mp3" in failed["wind-down.yaml"]
    assert "breath-short.yaml and breath.yaml (variant short) would both be written to breath-short.mp3" \
        in failed["breath.yaml"]


def test_an_output_replaced_by_a_file_of_the_same_size_is_built_again(gt, tmp_path):
    lib, out = tmp_path / "lib", tmp_path / "out"
    lib.mkdir()
    (lib / "rest.yaml").write_text("guidetrack: 1\ntitle: Rest\nsteps:\n  - say: Rest.\n")
    gt("build", lib, "-o", out, check=True)
    size = (out / "rest.mp3").stat().st_size
    assert summary(gt("build", lib, "-o", out, "--json", check=True))["built"] == []
    os.utime(out / "rest.mp3")  # touched, the same bytes: still up to date
    assert summary(gt("build", lib, "-o", out, "--json", check=True))["built"] == []
    (out / "rest.mp3").write_bytes(b"x" * size)
    assert summary(gt("build", lib, "-o", out, "--json", check=True))["built"] == ["rest.mp3"]
    sha = hashlib.sha256((out / "rest.mp3").read_bytes()).hexdigest()
    (track,) = json.loads((out / "catalog.json").read_text())["tracks"]
    assert track["files"]["audio"]["sha256"] == sha and "stat" not in track["files"]["audio"]


def _descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_build_leaves_no_process_behind(library, tmp_path):
    """kill -9 of `build` while it renders: its pool workers, the manager, their speech workers
    and encoders all end (issue 19: each used to stay, about 335 MB a build)."""
    env = {**os.environ, "GUIDETRACK_CACHE_DIR": str(tmp_path / "cold-cache")}  # cold: speech workers run too
    process = subprocess.Popen([sys.executable, "-m", "guidetrack", "build", str(library), "-o", str(tmp_path / "out"),
                                "--jobs", "2"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    below: set[int] = set()
    while time.monotonic() < deadline and len(below) < 5:  # the manager, two workers and what they run
        time.sleep(0.2)
        below = _descendants(process.pid)
    assert len(below) >= 3, below
    time.sleep(1.0)
    below |= _descendants(process.pid)
    process.kill()
    process.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(pid) for pid in below):
        time.sleep(0.2)
    assert not [pid for pid in below if _alive(pid)], [
        (pid, (Path("/proc") / str(pid) / "cmdline").read_bytes()[:80]) for pid in below if _alive(pid)]
