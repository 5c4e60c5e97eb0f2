"""Each list of kinds is written once, and the places that act on it agree with it."""

from __future__ import annotations

from importlib import import_module

import pytest

from guidetrack.encode import FORMATS, Format, encoder_command
from guidetrack.engines import ENGINES, bundled_voices, engine_version
from guidetrack.mix import BEDS
from guidetrack.plan import Event, Kind
from guidetrack.script import GENERATED_BACKGROUNDS, json_schema


def test_every_bed_a_script_may_name_is_one_the_mix_can_make():
    assert set(BEDS) == set(GENERATED_BACKGROUNDS)
    for name, make in BEDS.items():
        block = make().read(4410)
        assert block.shape == (4410, 2) and block.any(), name


def test_every_format_has_its_suffix_codec_muxer_type_and_options():
    from guidetrack.encode import ENCODER_OPTIONS
    from guidetrack.publish import AUDIO_TYPES

    assert set(FORMATS) == set(Format) == set(ENCODER_OPTIONS)
    for fmt in Format:
        suffix, codec, muxer, mime = FORMATS[fmt]
        command = encoder_command("x", output=_output(fmt))
        assert suffix == f".{fmt.value}" and codec in command and muxer in command
        assert AUDIO_TYPES[suffix] == mime and mime.startswith("audio/")


def _output(fmt: Format):
    from guidetrack.encode import Output

    return Output(fmt)


@pytest.mark.parametrize("name", list(ENGINES))
def test_every_engine_module_has_the_registry_functions(name):
    module = import_module(f"guidetrack.engines.{ENGINES[name].module}")
    for function in ("engine_version", "shared_engine", "bundled_voices"):
        assert callable(getattr(module, function)), f"{name}: {function}"
    assert isinstance(bundled_voices(name), tuple)
    try:
        assert engine_version(name)
    except Exception as err:  # an engine not installed here (Piper is an extra) says how to install it
        assert "install" in str(err)


def test_the_schema_names_every_engine_and_an_unknown_event_kind_is_refused():
    engines = json_schema()["else"]["properties"]["voice"]["anyOf"][1]["properties"]["engine"]["enum"]
    assert engines == list(ENGINES)
    with pytest.raises(ValueError):
        Event(0, 10, "thunder")  # type: ignore[arg-type]
    assert Event(0, 10, "tone").kind is Kind.TONE


def test_a_missing_ffmpeg_is_named_not_blamed_on_the_audio_file(tmp_path):
    import os
    import subprocess
    import sys

    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "anoisesrc=d=1:c=pink:r=44100",
                    str(tmp_path / "bed.wav")], check=True)
    script = tmp_path / "s.yaml"
    script.write_text("guidetrack: 1\ntitle: T\nvoice: calm\nbackground: {sound: bed.wav}\nsteps:\n  - say: Rest.\n")
    env = {**os.environ, "PATH": str(tmp_path / "nothing-here")}
    done = subprocess.run([sys.executable, "-m", "guidetrack", "validate", str(script)], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert "ffmpeg is not installed" in done.stderr and "cannot decode" not in done.stderr
