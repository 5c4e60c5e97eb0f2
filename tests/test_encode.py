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


def test_a_chunked_mp3_is_the_same_audio_whether_lame_runs_here_or_in_ffmpeg(tmp_path, monkeypatch):
    """Over a minute of MP3 is encoded in chunks: by libmp3lame in this process, or, where that
    cannot be loaded, by an ffmpeg a chunk. Both give the same audio frames, so the same sound
    and the same figures."""
    import guidetrack.encode as enc
    from guidetrack import mp3

    rng = np.random.default_rng(2)
    t = np.arange(44100 * 2) / 44100

    def music():
        for i in range(33):  # 66 s: two chunks
            tone = 0.2 * np.sin(2 * np.pi * (220 + 20 * i) * t) + 0.02 * rng.standard_normal(len(t))
            yield np.stack([tone, np.roll(tone, 9)], axis=1).astype(np.float32)

    spans = [(44100, 44100 * 30)]
    here = encode(lambda: music(), tmp_path / "here.mp3", TAGS, gain_db=-3.0, spans=spans, samples=44100 * 66)
    rng = np.random.default_rng(2)
    monkeypatch.setattr(enc.lame, "encoder", lambda: None)
    there = encode(lambda: music(), tmp_path / "there.mp3", TAGS, gain_db=-3.0, spans=spans, samples=44100 * 66)

    def audio_frames(path):
        data = path.read_bytes()  # after its ID3v2 tag
        size = (data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | (data[9] & 0x7F)
        return mp3.frames_of(data[10 + size:])

    assert len(audio_frames(tmp_path / "here.mp3")) > mp3.CHUNK_FRAMES  # more than one chunk
    assert audio_frames(tmp_path / "here.mp3")[1:] == audio_frames(tmp_path / "there.mp3")[1:]
    assert here.figures == there.figures and here.samples == there.samples == 44100 * 66


def test_a_kept_layout_is_read_back_and_a_damaged_or_forged_one_is_not(tmp_path):
    """Where a file's chunks lie is kept in the cache; nothing kept there is trusted unchecked."""
    import json

    from guidetrack import mp3
    from guidetrack.encode import _layout_json, _read_layout
    from guidetrack.files import checked_json

    digest = "ab" * 32
    layout = mp3.Layout(417, digest, (mp3.Placed("cd" * 32, 417, 1000, digest), mp3.Placed("ef" * 32, 1417, 90, digest)))
    path = tmp_path / "layout.json"
    path.write_bytes(_layout_json(layout, 36_000, 37_507))
    assert _read_layout(path) == (layout, 36_000, 37_507)
    path.write_bytes(path.read_bytes().replace(b"36000", b"36001"))  # damaged
    assert _read_layout(path) is None
    body = json.loads(_layout_json(layout, 36_000, 37_507))
    overlapping = [["cd" * 32, 417, 1000, digest], ["ef" * 32, 1400, 107, digest]]
    for field, forged in (("start", -1), ("chunks", [["cd" * 32, 417, "1000", digest]]), ("info", [417, "x"]),
                          ("size", 1 << 40), ("chunks", overlapping), ("info", [1 << 30, digest])):
        record = {**{k: v for k, v in body.items() if k != "check"}, field: forged}
        path.write_bytes(checked_json(record))  # its check holds, but no encode writes such a thing
        assert _read_layout(path) is None, field
    path.write_text("not json")
    assert _read_layout(path) is None


def test_the_file_replaced_is_read_only_while_it_is_the_file_its_layout_describes(tmp_path):
    """A layout is only taken as telling where the frames lie in a regular file of the size it
    was written at: a file grown since, a pipe put at its path or no file gives nothing to take."""
    import os

    from guidetrack import mp3
    from guidetrack.encode import _earlier, _layout_json

    digest = "ab" * 32
    layout = mp3.Layout(417, digest, (mp3.Placed("cd" * 32, 417, 1000, digest),))
    kept, out = tmp_path / "layout.json", tmp_path / "track.mp3"
    kept.write_bytes(_layout_json(layout, 100, 1517))
    out.write_bytes(bytes(1517))
    with _earlier(out, kept) as earlier:
        assert earlier is not None and earlier.layout == layout and earlier.start == 100
    with out.open("ab") as grown:
        grown.write(b"x")
    with _earlier(out, kept) as earlier:
        assert earlier is None
    out.unlink()
    with _earlier(out, kept) as earlier:
        assert earlier is None
    os.mkfifo(out)  # opening it must not wait for a writer
    with _earlier(out, kept) as earlier:
        assert earlier is None


def test_another_build_or_set_up_of_lame_gives_other_settings_so_no_chunk_is_taken(monkeypatch):
    """A chunk's name covers what LAME makes of a fixed sound at the output's settings: a LAME
    set up or fed otherwise (here: its samples scaled otherwise) never has another's frames
    spliced into its file."""
    from guidetrack import encode as encoding
    from guidetrack import lame

    found = lame.encoder()
    assert found is not None
    output = encoding.Output()
    before = encoding._settings(output)
    assert before is not None and before == encoding._settings(output)
    assert encoding._settings(encoding.Output(bitrate="192k")) != before
    fresh = lame.Lame(found.library)  # a process that has not fingerprinted yet
    monkeypatch.setattr(lame, "encoder", lambda: fresh)
    assert encoding._settings(output) == before
    fresh.fingerprints.clear()
    monkeypatch.setattr(lame, "FLOAT_SCALE", np.float32(32767.0))
    assert encoding._settings(output) != before
