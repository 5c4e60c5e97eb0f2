"""Encoding: atomic output, clear errors."""

import numpy as np
import pytest

from guidetrack.encode import Tags, encode
from guidetrack.errors import EncodeError

TAGS = Tags("t", "a", "b", "c")


def blocks(count, fail_at=None):
    for i in range(count):
        if i == fail_at:
            raise KeyboardInterrupt
        yield np.zeros((44100, 2), np.float32)


def test_writes_a_complete_file(tmp_path):
    out = tmp_path / "a.mp3"
    assert encode(lambda: blocks(3), out, TAGS).samples == 3 * 44100
    assert out.stat().st_size > 1000
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp3"]


def test_an_interrupted_render_keeps_the_old_file_and_leaves_no_part(tmp_path):
    out = tmp_path / "a.mp3"
    out.write_bytes(b"previous render")
    with pytest.raises(KeyboardInterrupt):
        encode(lambda: blocks(5, fail_at=3), out, TAGS, gain_db=0.0)
    assert out.read_bytes() == b"previous render"
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp3"]


def test_encoder_failure_carries_command_and_stderr(tmp_path, monkeypatch):
    import guidetrack.encode as enc

    original = enc.encoder_command
    monkeypatch.setattr(enc, "encoder_command", lambda target, *args: original(target)[:-3] + ["-b:a", "nonsense", target])
    with pytest.raises(EncodeError) as caught:
        encode(lambda: blocks(2), tmp_path / "a.mp3", TAGS)
    assert "ffmpeg" in str(caught.value) and caught.value.command
    # the encoder's own failure is reported, not the limiter's broken pipe before it
    assert caught.value.command[-1].endswith(".part") and "nonsense" in caught.value.command
    assert not (tmp_path / "a.mp3").exists()
    assert list(tmp_path.iterdir()) == []
