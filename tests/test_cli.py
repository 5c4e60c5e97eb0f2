"""The command line: one meaning per option, named exit codes, --version and --verbose."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from guidetrack import __version__

SCRIPT = Path(__file__).resolve().parent / "scripts" / "short.yaml"


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "guidetrack", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


def test_version():
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"guidetrack {__version__}"


@pytest.mark.parametrize("args, message", [
    (["--format", "opus", "--vbr", "2"], "--vbr is for MP3 only"),
    (["--format", "wav", "--bitrate", "192k"], "--bitrate has no bitrate for WAV"),
    (["--vbr", "2", "--bitrate", "192k"], "--bitrate has no bitrate for WAV, nor beside --vbr"),
    (["--format", "opus", "--sample-rate", "44100"], "--sample-rate is for formats other than Opus"),
])
def test_an_option_that_would_be_ignored_is_an_error(tmp_path, args, message):
    done = run("render", SCRIPT, "-o", tmp_path / "x", *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not list(tmp_path.iterdir())


def test_scheduler_refuses_options_it_cannot_honour(tmp_path):
    done = run("build", SCRIPT.parent, "-o", tmp_path / "out", "--scheduler", "tcp://127.0.0.1:9", "--jobs", "2")
    assert done.returncode == 2 and "--jobs cannot be used with --scheduler" in done.stderr


def test_dash_v_is_verbose_and_variant_has_no_short_form(tmp_path):
    assert run("plan", SCRIPT, "-v", "x").returncode == 2  # -v is not --variant any more
    script = tmp_path / "v.yaml"
    script.write_text("guidetrack: 1\ntitle: V\nvoice: calm\nvariants: {a: {}, b: {gap: 2s}}\nsteps:\n  - say: Rest.\n")
    verbose = run("-v", "plan", script, "--variant", "b", "--variant", "a", "--json", "--cache-dir", tmp_path / "c")
    assert verbose.returncode == 0 and "guidetrack.engines.worker: starting the pyttsx3 worker" in verbose.stderr
    import json

    plans = json.loads(verbose.stdout)
    assert [p["title"] for p in plans] == ["V (b)", "V (a)"]
    first = json.loads(run("plan", script, "--json").stdout)  # the first variant, as before
    assert first["title"] == "V (a)"


def test_a_script_does_not_see_voice_profiles_in_the_current_folder(tmp_path):
    (tmp_path / "voices").mkdir()
    (tmp_path / "voices" / "mine.yaml").write_text("guidetrack-voice: 1\nengine: pyttsx3\nvoice: en-us\n")
    (tmp_path / "lib").mkdir()
    script = tmp_path / "lib" / "s.yaml"
    script.write_text("guidetrack: 1\ntitle: S\nvoice: mine\nsteps:\n  - say: Rest.\n")
    done = run("validate", script, cwd=tmp_path)
    assert done.returncode == 2
    assert "which a script does not look in: move it to" in done.stderr and str(tmp_path / "lib" / "voices") in done.stderr
    (tmp_path / "lib" / "voices").mkdir()
    (tmp_path / "voices" / "mine.yaml").rename(tmp_path / "lib" / "voices" / "mine.yaml")
    assert run("validate", script, cwd=tmp_path).returncode == 0
