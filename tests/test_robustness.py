"""What a hostile tester found (issue 19), kept fixed: kills at chosen stages (tests/faults.py),
full and read-only disks (a small tmpfs, where the machine lets us mount one), damaged state,
odd files and names, and memory that must not grow with the audio. Real engine and encoder."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from helpers import FAULTS, ROOT, seed_cache

pytestmark = pytest.mark.integration

TINY = """guidetrack: 1
title: {title}
steps:
  - section: {section}
    steps:
      - say: {text}
      - pause: 1s
      - say: Rest here.
"""


def tiny(folder: Path, name: str = "tiny.yaml", title: str = "Tiny", section: str = "Arrive",
         text: str = "Let the breath settle.") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(TINY.format(title=title, section=section, text=text))
    return path


def run(*args: object, env: dict[str, str], kill_at: str | None = None, memory: Path | None = None,
        timeout: int = 300, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """guidetrack ARGS under the fault runner."""
    command = [sys.executable, str(FAULTS)]
    if kill_at:
        command += ["--kill-at", kill_at]
    if memory:
        command += ["--memory", str(memory)]
    return subprocess.run([*command, "--", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


@pytest.fixture
def env(cache_dir) -> Iterator[dict[str, str]]:
    """The shared clip cache, and a private $TMPDIR so that litter there can be seen. A short
    path in the system's temporary folder, not in tmp_path: a build's multiprocessing socket is
    made in $TMPDIR, and under pytest-xdist tmp_path is long enough to pass the 107 bytes a
    socket's path may have (OSError: AF_UNIX path too long)."""
    temp = Path(tempfile.mkdtemp(prefix="gt-"))
    yield {**os.environ, "GUIDETRACK_CACHE_DIR": str(cache_dir), "TMPDIR": str(temp)}
    shutil.rmtree(temp, ignore_errors=True)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def track_files(out: Path) -> dict[str, str]:
    return {p.name: digest(p) for p in sorted(out.iterdir()) if p.is_file() and not p.name.startswith(".")}


def parts(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.exists() for p in folder.rglob("*.part")]


def age(paths: list[Path], seconds: float = 700, temp: Path | None = None) -> None:
    """As if the litter (and guidetrack's folders in `temp`) had been left a while ago: a cleaner
    leaves a fresh one alone."""
    past = time.time() - seconds
    folders = [p for p in temp.iterdir() if p.name.startswith("guidetrack-")] if temp else []
    for path in paths + folders:
        os.utime(path, (past, past))


@pytest.mark.parametrize("stage", ["speaking", "caching", "measuring", "tagging"])
def test_a_kill_at_any_stage_leaves_the_old_track_whole_and_the_next_run_cleans_up(tmp_path, env, stage, cache_dir):
    out = tmp_path / "out"
    script = tiny(tmp_path)
    cache = seed_cache(tmp_path / "cache", script, cache_dir)  # its own, to see what is left in it
    env = {**env, "GUIDETRACK_CACHE_DIR": str(cache)}
    assert run("render", script, "-o", out / "tiny.mp3", env=env).returncode == 0
    before = track_files(out)
    assert set(before) == {"tiny.mp3", "tiny.vtt", "tiny.srt", "tiny.chapters.json", "tiny.svg", "tiny.breath.json"}
    tiny(tmp_path, text=f"Let the breath settle, {stage}.")  # a new clip to speak and store

    killed = run("render", script, "-o", out / "tiny.mp3", env=env, kill_at=stage)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert track_files(out) == before  # the old track and its transcripts, untouched
    temp = Path(env["TMPDIR"])
    litter = parts(out, cache) + [p for p in temp.iterdir() if p.name.startswith("guidetrack-")]
    if stage in ("measuring", "tagging"):
        assert parts(out)  # the killed render's own file, never at the output path
    if stage == "speaking":
        assert any(p.name.startswith("guidetrack-speech-") for p in litter)

    age(parts(out, cache), temp=temp)
    again = run("render", script, "-o", out / "tiny.mp3", env=env)
    assert again.returncode == 0, again.stderr
    assert not parts(out, cache), parts(out, cache)
    assert not [p for p in temp.iterdir() if p.name.startswith("guidetrack-")]
    assert track_files(out)["tiny.mp3"] != before["tiny.mp3"]
    assert "settle, " + stage in (out / "tiny.vtt").read_text()


def test_a_kill_between_the_audio_and_its_transcripts_leaves_no_old_transcript(tmp_path, env):
    out = tmp_path / "out"
    script = tiny(tmp_path)
    assert run("render", script, "-o", out / "tiny.mp3", env=env).returncode == 0
    old_vtt = (out / "tiny.vtt").read_text()
    tiny(tmp_path, section="Settle")  # new chapters and transcripts, no new speech: the first rename is the audio's
    killed = run("render", script, "-o", out / "tiny.mp3", env=env, kill_at="renaming@2")
    assert killed.returncode == -signal.SIGKILL
    left = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    assert "tiny.mp3" in left
    for name in ("tiny.vtt", "tiny.srt", "tiny.chapters.json", "tiny.svg", "tiny.breath.json"):  # missing, never stale beside the new audio
        assert name not in left or (out / name).read_text() != old_vtt
    age(parts(out))
    assert run("render", script, "-o", out / "tiny.mp3", env=env).returncode == 0
    assert "Settle" in (out / "tiny.chapters.json").read_text() and not parts(out)


def test_a_polite_kill_removes_its_temporary_files(tmp_path, env):
    """SIGTERM while the engine speaks (a cold cache): exit 130, nothing left in $TMPDIR or out/."""
    env = {**env, "GUIDETRACK_CACHE_DIR": str(tmp_path / "cold")}
    lines = "\n".join(f"  - say: Breathe in slowly and let go of the day, part {n}." for n in range(40))
    script = tmp_path / "long.yaml"
    script.write_text(f"guidetrack: 1\ntitle: Long\nsteps:\n{lines}\n")
    temp = Path(env["TMPDIR"])
    process = subprocess.Popen([sys.executable, "-m", "guidetrack", "render", str(script), "-o",
                                str(tmp_path / "out" / "long.mp3")], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.name.startswith("guidetrack-") for p in temp.iterdir()):
        time.sleep(0.02)
    assert any(p.name.startswith("guidetrack-") for p in temp.iterdir()), "the engine never started"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    assert not [p for p in temp.iterdir() if p.name.startswith("guidetrack-")]
    assert not parts(tmp_path / "out")


# ---------------------------------------------------------------- full and read-only disks


@contextmanager
def small_disk(folder: Path, size: str, read_only: bool = False):
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("this machine does not let the tests mount a tmpfs")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path) -> None:
    """Fill a disk to its last byte."""
    handle = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for block in (4096, 1):
            while True:
                os.write(handle, b"\0" * block)
    except OSError:
        pass
    finally:
        os.close(handle)


def test_a_full_disk_is_a_message_and_the_old_track_stays(tmp_path, env):
    script = tiny(tmp_path)
    with small_disk(tmp_path / "disk", "400k") as disk:
        assert run("render", script, "-o", disk / "tiny.mp3", env=env).returncode == 0
        before = track_files(disk)
        fill(disk)
        tiny(tmp_path, title="Tiny, again")
        full = run("render", script, "-o", disk / "tiny.mp3", env=env)
        assert full.returncode == 1, full.stderr
        assert "No space left on device" in full.stderr and "Traceback" not in full.stderr
        after = track_files(disk)
        after.pop("filler")
        assert after == before and not parts(disk)


def test_a_build_into_a_full_disk_reports_each_failure(tmp_path, env):
    library = tmp_path / "library"
    tiny(library, "one.yaml")
    tiny(library, "two.yaml", text="Soften the jaw.")
    with small_disk(tmp_path / "disk", "300k") as disk:
        (disk / "out").mkdir()
        fill(disk)
        filler = disk / "filler"
        os.truncate(filler, filler.stat().st_size - 40_000)  # room for the build's own small files, not for tracks
        built = run("build", library, "-o", disk / "out", "--json", env=env)
        assert "Traceback" not in built.stderr, built.stderr
        assert built.returncode == 1
        failed = {f["what"]: f["message"] for f in json.loads(built.stdout)["failed"]}
        assert {"one.mp3", "two.mp3"} <= set(failed) and all("No space left" in m for m in failed.values())
        assert not parts(disk)


def test_a_read_only_cache_renders_without_caching_and_says_so(tmp_path, env):
    script = tiny(tmp_path, text="A read-only cache.")
    with small_disk(tmp_path / "ro", "1m", read_only=True) as cache:
        done = run("render", script, "-o", tmp_path / "out.mp3", env={**env, "GUIDETRACK_CACHE_DIR": str(cache)})
    assert done.returncode == 0, done.stderr
    assert "clips were not cached" in done.stderr and "Read-only file system" in done.stderr
    assert (tmp_path / "out.mp3").stat().st_size > 10_000


def test_a_read_only_output_folder_fails_before_rendering(tmp_path, env):
    script = tiny(tmp_path)
    with small_disk(tmp_path / "ro", "1m", read_only=True) as folder:
        done = run("render", script, "-o", folder / "x.mp3", env=env)
    assert done.returncode == 1 and "cannot write in" in done.stderr and "Read-only" in done.stderr
    assert "wrote" not in done.stderr


# ---------------------------------------------------------------- damaged state, odd paths


def test_a_cache_entry_that_is_a_folder_is_spoken_again(tmp_path, env, cache_dir):
    script = tiny(tmp_path, text="A folder in the cache.")
    cache = seed_cache(tmp_path / "cache", script, cache_dir)
    env = {**env, "GUIDETRACK_CACHE_DIR": str(cache)}
    assert run("render", script, "-o", tmp_path / "a.mp3", env=env).returncode == 0
    entries = sorted(cache.glob("*.wav"))
    assert entries
    for entry in entries:
        entry.unlink()
        entry.mkdir()
    done = run("render", script, "-o", tmp_path / "b.mp3", env=env)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "clips were not cached" in done.stderr and "Is a directory" in done.stderr


@pytest.mark.parametrize("where, message", [("cache", "is a file, not a folder"), ("out", "is a folder")])
def test_a_cache_that_is_a_file_or_an_output_that_is_a_folder_exits_2_at_once(tmp_path, env, where, message):
    script = tiny(tmp_path)
    (tmp_path / "thing").mkdir() if where == "out" else (tmp_path / "thing").write_text("x")
    args = ["-o", tmp_path / "thing"] if where == "out" else ["-o", tmp_path / "x.mp3", "--cache-dir", tmp_path / "thing"]
    done = run("render", script, *args, env=env)
    assert done.returncode == 2 and message in done.stderr and "wrote" not in done.stderr, done.stderr


def test_a_script_with_a_235_character_name_renders(tmp_path, env):
    script = tiny(tmp_path, "a" * 230 + ".yaml")
    done = run("render", script, env=env, cwd=tmp_path)  # to out/<name>.mp3, temporary name .<name>.<pid>.<random>.part
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / ("a" * 230 + ".mp3")).is_file()
    assert (tmp_path / "out" / ("a" * 230 + ".chapters.json")).is_file()


@pytest.mark.parametrize("damage", ["deep", "types", "nonsense", "publishing"])
def test_a_damaged_manifest_is_not_trusted_and_the_build_goes_on(tmp_path, env, damage, run_once):
    def make(folder):  # one library built once for the four damages, each on its own copy of the build
        tiny(folder / "library", "one.yaml")
        assert run("build", folder / "library", "-o", folder / "out", env=env).returncode == 0

    built = run_once("tiny-library", make)
    library, out = built / "library", tmp_path / "out"
    shutil.copytree(built / "out", out)
    manifest = out / "build-manifest.json"
    data = json.loads(manifest.read_text())
    if damage == "deep":
        manifest.write_text('{"guidetrack-build": 1, "outputs": {"one.mp3": ' + "[" * 100_000 + "]" * 100_000 + "}}")
    elif damage == "publishing":  # fields only the page and the feed read
        entry = data["outputs"]["one.mp3"]
        entry["track"]["description"] = None
        entry["published"] = "yesterday"
        data["title"] = 5
        manifest.write_text(json.dumps(data))
    elif damage == "types":
        entry = data["outputs"]["one.mp3"]
        entry["files"]["audio"]["bytes"] = "many"
        entry["track"]["chapters"] = [{"title": 5}]
        data["outputs"]["other.mp3"] = {"files": 7}
        manifest.write_text(json.dumps(data))
    else:
        manifest.write_text('["not", "a", "manifest"]')
    again = run("build", library, "-o", out, "--json", env=env)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    assert json.loads(again.stdout)["built"] == ["one.mp3"]
    assert (out / "one.mp3").is_file()


def test_the_published_manifest_names_no_machine_and_a_rebuild_keeps_the_catalogs_bytes(tmp_path, env):
    library = tmp_path / "library"
    tiny(library, "one.yaml")
    out = tmp_path / "out"
    assert run("build", library, "-o", out, env=env).returncode == 0
    text = (out / "build-manifest.json").read_text()
    assert socket.gethostname() not in text and '"worker"' not in text
    catalog = (out / "catalog.json").read_bytes()
    assert run("build", library, "-o", out, env=env).returncode == 0
    assert (out / "catalog.json").read_bytes() == catalog


def test_a_symlinked_script_outside_the_library_is_refused_by_validate_and_build(tmp_path, env):
    library = tmp_path / "library"
    tiny(library, "inside.yaml")
    outside = tiny(tmp_path / "elsewhere", "outside.yaml")
    (library / "linked.yaml").symlink_to(outside)
    checked = run("validate", library, env=env)
    assert checked.returncode == 2 and "linked.yaml:1:1" in checked.stderr and "outside the library" in checked.stderr
    built = run("build", library, "-o", tmp_path / "out", "--json", env=env)
    assert built.returncode == 1 and "Traceback" not in built.stderr
    summary = json.loads(built.stdout)
    assert summary["built"] == ["inside.mp3"] and [f["what"] for f in summary["failed"]] == ["linked.yaml"]


def write_wav(path: Path, data: bytes, channels: int, rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels), out.setsampwidth(2), out.setframerate(rate)
        out.writeframes(data)


def test_odd_wav_files_are_read_or_refused_with_a_message(tmp_path, env):
    tone = (np.sin(np.arange(2 * 44_100 * 2) * 0.05) * 8000).astype("<i2").tobytes()
    write_wav(tmp_path / "truncated.wav", tone, 2, 44_100)
    data = (tmp_path / "truncated.wav").read_bytes()
    (tmp_path / "truncated.wav").write_bytes(data[:-3])  # cut at an odd byte count
    noise = (np.random.default_rng(1).standard_normal(8 * 600) * 3000).astype("<i2").tobytes()
    write_wav(tmp_path / "slow.wav", noise, 8, 1)  # eight channels at 1 Hz: ten minutes of audio
    (tmp_path / "garbage.wav").write_bytes(b"RIFF\xff\xff\xff\xffWAVEfmt " + os.urandom(400))
    for name, ok in (("truncated", True), ("slow", True), ("garbage", False)):
        script = tmp_path / f"{name}.yaml"
        script.write_text(f"guidetrack: 1\ntitle: X\nbackground: {{sound: {name}.wav, level: -20}}\n"
                          "steps:\n  - say: Rest.\n  - pause: 2s\n")
        checked = run("validate", script, env=env)
        assert "Traceback" not in checked.stderr, checked.stderr
        if ok:
            assert checked.returncode == 0, checked.stderr
        else:
            assert checked.returncode == 2 and f"{name}.yaml:3:" in checked.stderr and "cannot decode" in checked.stderr


def test_a_fifo_named_as_intro_is_not_a_regular_file(tmp_path, env):
    os.mkfifo(tmp_path / "pipe.mp3")
    script = tmp_path / "fifo.yaml"
    script.write_text("guidetrack: 1\ntitle: X\nintro: {sound: pipe.mp3}\nsteps:\n  - say: Rest.\n")
    checked = run("validate", script, env=env, timeout=30)
    assert checked.returncode == 2 and "not a regular file" in checked.stderr, checked.stderr


@pytest.mark.parametrize("args, message", [
    (["--base-url", "javascript:alert(1)"], "--base-url"),
    (["--base-url", "https://[bad/"], "--base-url"),
    (["--base-url", "https://example.org:99999/"], "--base-url"),
    (["--base-url", "https://example.org/a b/"], "--base-url"),
    (["--title", "A\x1bB"], "--title"),
])
def test_build_options_are_checked(tmp_path, env, args, message):
    tiny(tmp_path / "library")
    done = run("build", tmp_path / "library", "-o", tmp_path / "out", *args, env=env)
    assert done.returncode == 2 and message in done.stderr and not (tmp_path / "out" / "tiny.mp3").exists()


def test_text_with_nothing_to_speak_is_refused_at_its_line(tmp_path, env):
    script = tmp_path / "bang.yaml"
    script.write_text('guidetrack: 1\ntitle: X\nsteps:\n  - say: Rest.\n  - say: "!!! ???"\n')
    done = run("render", script, "-o", tmp_path / "x.mp3", env=env)
    assert done.returncode == 2 and "bang.yaml:5:" in done.stderr and "no words to speak" in done.stderr


# ---------------------------------------------------------------- memory does not grow with the audio


@pytest.mark.slow(13)
def test_validating_a_long_background_file_does_not_hold_it_in_memory(tmp_path, env):
    """An hour of stereo FLAC decodes to 1.3 GB of float samples; validate streams it."""
    bed = tmp_path / "hour.flac"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=f=110:d=3600", "-ac", "2",
                    "-compression_level", "0", str(bed)], check=True)
    script = tmp_path / "bed.yaml"
    script.write_text("guidetrack: 1\ntitle: X\nbackground: {sound: hour.flac, level: -20}\n"
                      "steps:\n  - say: Rest.\n  - pause: 2s\n")
    peak = tmp_path / "peak"
    checked = run("validate", script, env=env, memory=peak)
    assert checked.returncode == 0, checked.stderr
    assert int(peak.read_text()) < 400_000, f"{int(peak.read_text()) // 1024} MB"


def test_long_spoken_texts_are_not_all_held_in_memory(tmp_path):
    """Ten minutes of speech (a fake engine: this is about what is kept, not how it sounds): the
    plan and the levels keep a few clips at a time, not all of them (that was over 300 MB)."""
    from guidetrack.mix import levels
    from guidetrack.plan import make_plan
    from guidetrack.script import load
    from guidetrack.speech import ClipCache, Speaker
    from helpers import ToneEngine

    sentence = "Let the weight of the legs sink down into the wall and soften the belly as you breathe. "
    says = "\n".join(f"  - say: {sentence * 9}Part {n}." for n in range(30))
    path = tmp_path / "long.yaml"
    path.write_text(f"guidetrack: 1\ntitle: Long\nsteps:\n{says}\n")
    script = load(path)
    speaker = Speaker(script.voice, ClipCache(tmp_path / "cache"), engine_for=lambda name: ToneEngine())
    warm = tmp_path / "warm.yaml"  # what is imported on first use is not what this is about
    warm.write_text("guidetrack: 1\ntitle: Warm\nsteps:\n  - say: Rest.\n")
    levels(make_plan(load(warm), speaker.lengths, lambda p: 0), speaker.clip)
    tracemalloc.start()
    try:
        plan = make_plan(script, speaker.lengths, lambda p: 0)
        found = levels(plan, speaker.clip)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert plan.length > 10 * 60 * 44_100 and found.voice_lufs > -40
    assert peak < 60_000_000, f"{peak / 1e6:.0f} MB"
