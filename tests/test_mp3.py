"""MP3 on every core: the chunk plan, the joined file's header, and with the real encoder, a
joined file that decodes to exactly the mix's length, the same bytes whatever the number of
encoders, and seams no worse than the rest of the file."""

from __future__ import annotations

import io
import itertools
import subprocess

import numpy as np
import pytest

from guidetrack import mp3
from guidetrack.encode import Output, chunk_command
from guidetrack.ffmpeg import run

RATE = 44_100


@pytest.mark.parametrize("samples", [0, 1, 575, 576, 1152 * 40 - 576, 1152 * 40 - 575, 1_000_003, 26_460_000])
def test_chunks_cover_the_track_frame_by_frame(samples):
    plan = mp3.chunks(samples, chunk_frames=40)
    assert plan[0].first == 0 and plan[0].start == 0 and plan[0].skip == 0
    assert plan[-1].end == -1 and plan[-1].stop == samples  # the last keeps all it makes
    for before, after in itertools.pairwise(plan):
        assert after.first == before.end  # no frame twice, none missing
        assert after.start % mp3.FRAME == 0 and after.start == (after.first - after.skip) * mp3.FRAME
        # the chunk before is encoded past its last frame's audio, so that frame knows what follows
        assert before.stop >= before.end * mp3.FRAME - mp3.ENCODER_DELAY + mp3.POST or before.stop == samples
        assert after.start < before.stop  # they overlap
    assert all(0 <= c.start <= c.stop <= samples for c in plan)


def test_crc_is_lames():
    assert mp3.crc16(b"123456789") == 0xBB3D  # CRC-16/ARC's check value


@pytest.mark.parametrize("length", [0, 1, 100, 2047, 2048, 2049, 50_000, 123_457])
def test_the_fast_crc_is_the_plain_one(length, monkeypatch):
    """The music CRC is worked out in lanes, chunk by chunk, and carried from one to the next."""
    monkeypatch.setattr(mp3, "CRC_LANES", 64)
    data = np.random.default_rng(length).integers(0, 256, length, dtype=np.uint8)
    crc = 0
    for piece in np.array_split(data, 3):
        crc = mp3._carry(crc, len(piece)) ^ mp3._crc_lanes(piece)
    assert crc == mp3.crc16(data.tobytes())


def speechlike(seconds: float, seed: int = 1) -> np.ndarray:
    """A hard case for a seam: sound everywhere, voiced harmonics gliding in pitch, syllables four
    a second, breathy noise, and a click every 1.3 s (transients make LAME switch to short blocks)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    pitch = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t) ** 2
    noise = rng.normal(0, 0.05, len(t))
    left = 0.25 * voice * syllables + noise
    clicks = (np.arange(len(t)) % int(1.3 * RATE)) < 40
    left = left + 0.6 * clicks * rng.choice([-1, 1], len(t))
    right = np.roll(left, 37) * 0.9
    return np.stack([left, right], axis=1).astype(np.float32)


def encode_chunk(audio: np.ndarray, folder, output=Output()) -> bytes:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(dir=folder) as where:
        target = Path(where) / "c.mp3"
        run([chunk_command(str(target), output)], [audio])
        return target.read_bytes()


def decode(data: bytes, folder) -> np.ndarray:
    path = folder / "decode.mp3"
    path.write_bytes(data)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "2", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, "<f4").reshape(-1, 2)


@pytest.mark.integration
def test_a_joined_file_is_gapless_deterministic_and_its_seams_are_clean(tmp_path):
    audio = speechlike(62.0)
    chunk_frames = 200  # a seam every 5.2 s: eleven of them

    def blocks():
        return (audio[i: i + 88_200] for i in range(0, len(audio), 88_200))

    def joined_with(workers: int) -> bytes:
        out = io.BytesIO()
        mp3.encode_parallel(blocks(), len(audio), lambda a: encode_chunk(a, tmp_path), workers, out, chunk_frames)
        return out.getvalue()

    joined = joined_with(2)
    # the same bytes with one encoder or four: the chunks do not depend on the cores
    assert joined_with(1) == joined and joined_with(4) == joined

    # the header: as LAME writes it, for the whole file (mutagen reads it; both CRCs hold)
    from mutagen.mp3 import MP3

    (tmp_path / "joined.mp3").write_bytes(joined)
    info = MP3(str(tmp_path / "joined.mp3")).info
    assert str(info.bitrate_mode).endswith("CBR") and info.sample_rate == RATE and info.channels == 2
    frames = mp3.frames_of(joined)
    head = frames[0]
    assert mp3.is_info(head) and int.from_bytes(head[44:48], "big") == len(frames) - 1
    assert int.from_bytes(head[48:52], "big") == len(joined)
    assert head[190:192] == mp3.crc16(head[:190]).to_bytes(2, "big")
    assert head[188:190] == mp3.crc16(joined[len(head):]).to_bytes(2, "big")
    assert int.from_bytes(head[184:188], "big") == len(joined)  # the LAME tag's music length
    offsets = np.cumsum([len(f) for f in frames])[:-1]  # where each audio frame starts
    toc = list(head[52:152])
    assert toc[0] == 0 and toc == sorted(toc)  # the seek table: a frame's place at each percent
    assert all(abs(toc[i] - 256 * offsets[(len(frames) - 1) * i // 100] / len(joined)) <= 1 for i in range(100))
    delay_padding = int.from_bytes(head[177:180], "big")
    assert delay_padding >> 12 == 576 and (len(frames) - 1) * 1152 - 576 - (delay_padding & 0xFFF) == len(audio)

    # decoded, exactly the samples the mix had, where the mix had them
    decoded = decode(joined, tmp_path)
    assert len(decoded) == len(audio)
    def misfit(shift: int) -> float:  # in the ninth chunk, so that a frame dropped or kept twice shows
        at = 45 * RATE
        return float(np.mean((decoded[at + shift: at + shift + 8192, 0] - audio[at: at + 8192, 0]) ** 2))

    assert min(range(-40, 41), key=misfit) == 0

    # a continuous encode of the same audio, for reference
    continuous = decode(encode_chunk(audio, tmp_path), tmp_path)
    assert len(continuous) == len(audio)

    # the error against the mix, in windows of two frames, around each seam: as one encoder's there
    # (the clicks make some windows worse than others, in both; what a seam adds shows as a ratio)
    def errors(pcm: np.ndarray) -> np.ndarray:
        window = 2 * mp3.FRAME
        diff = (pcm - audio)[: len(audio) // window * window, 0].astype(np.float64)
        return np.sqrt(np.mean(diff.reshape(-1, window) ** 2, axis=1))

    joined_error, continuous_error = errors(decoded), errors(continuous)
    seams = [(c.first * mp3.FRAME - mp3.ENCODER_DELAY) // (2 * mp3.FRAME) for c in mp3.chunks(len(audio), chunk_frames)[1:]]
    around = sorted({w for s in seams for w in (s - 1, s, s + 1)})
    assert len(seams) == 11
    ratio = joined_error[around] / continuous_error[around]
    assert ratio.max() <= 1.1, ratio
    elsewhere = np.delete(joined_error / continuous_error, around)  # and no better or worse than elsewhere
    assert abs(float(np.mean(ratio)) - float(np.mean(elsewhere))) < 0.02, (np.mean(ratio), np.mean(elsewhere))
    assert np.mean(joined_error) <= 1.02 * np.mean(continuous_error)  # the whole file, as faithful


@pytest.mark.integration
def test_mono_vbr_with_a_silent_start(tmp_path):
    """A mono VBR file whose first chunk is silence (one bitrate there): the whole is still named
    a VBR ("Xing") file, and decodes to exactly its samples."""
    audio = speechlike(12.0, seed=3)
    audio[: 3 * RATE] = 0.0
    output = Output(channels=1, quality=4)
    out = io.BytesIO()
    mp3.encode_parallel([audio], len(audio), lambda a: encode_chunk(a, tmp_path, output), 2, out, chunk_frames=60)
    joined = out.getvalue()
    head = mp3.frames_of(joined)[0]
    assert head[21:25] == b"Xing" and head[3] >> 6 == 3  # mono: the tag right after the side info
    (tmp_path / "mono.mp3").write_bytes(joined)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "mono.mp3"), "-f", "f32le", "-"],
                         capture_output=True, check=True).stdout
    assert len(raw) // 4 == len(audio)


def test_a_mix_longer_than_its_plan_is_an_error():
    audio = np.zeros((5000, 2), np.float32)
    plan = mp3.chunks(5000, 2)
    assert sum(len(part) for part in mp3._cut([audio], plan)) >= 5000  # as long as its plan: fine
    with pytest.raises(ValueError, match="ran past"):
        list(mp3._cut([audio, audio], plan))


@pytest.mark.integration
@pytest.mark.parametrize("channels", [2, 1])
def test_measured_as_written_is_measured_on_the_finished_file(tmp_path, channels):
    """The figures read from the frames as they are written (the chunked MP3's own measurement)
    are the finished file's, measured afresh by decoding it: the same decoded samples."""
    from guidetrack.loudness import MeasuredAsWritten, measure_file

    audio = speechlike(75.0, seed=5)  # two chunks of 60 s: a seam, and frames written in two goes
    audio[RATE * 20: RATE * 40] *= 0.3  # a softer stretch, for the range
    spans = [(RATE * 2, RATE * 19), (RATE * 33, RATE * 70)]
    output = Output(channels=channels)
    measure = MeasuredAsWritten(len(audio), spans, channels, mp3.DECODER_START)
    target = tmp_path / "joined.mp3"
    with target.open("wb") as out:
        mp3.encode_parallel([audio], len(audio), lambda a: encode_chunk(a, tmp_path, output), 2, out, listen=measure.write)
    as_written = measure.figures()
    finished = measure_file(target, spans, channels)
    assert as_written == finished
    assert finished.speech_lufs is not None and finished.true_peak > -10 and finished.lra > 1


@pytest.mark.integration
def test_a_measurement_stopped_midway_leaves_no_process(tmp_path):
    from guidetrack.loudness import MeasuredAsWritten

    measure = MeasuredAsWritten(RATE * 100, [(0, RATE)], 2, mp3.DECODER_START)
    measure.write(b"\xff\xfb\x90\x00" + bytes(413))  # a frame's worth, then the file is given up
    measure.abort()
    assert measure.decoder.process.poll() is not None and not measure.thread.is_alive()


@pytest.mark.parametrize("output", [Output(), Output(bitrate="192k"), Output(bitrate="64000", channels=1),
                                    Output(quality=2), Output(quality=6, channels=1)])
def test_lame_in_this_process_makes_ffmpegs_frames_bit_for_bit(output, tmp_path):
    """The chunks are encoded by libmp3lame called in this process (no ffmpeg start per chunk):
    every audio frame is the one ffmpeg's libmp3lame makes from the same samples, at every
    setting a chunk is made with, and its own Info frame carries what the join needs."""
    from guidetrack import lame
    from guidetrack.encode import _kbps

    encoder = lame.encoder()
    assert encoder is not None, "libmp3lame (which ffmpeg links) could not be loaded"
    audio = speechlike(4.3, seed=5)
    ours = mp3.frames_of(encoder.encode(audio, output.channels, output.rate, _kbps(output.bitrate), output.quality))
    theirs = mp3.frames_of(encode_chunk(audio, tmp_path, output))
    assert len(ours) == len(theirs) > 100
    assert ours[1:] == theirs[1:]
    assert mp3.is_info(ours[0]) and mp3.is_info(theirs[0])
    lame_tag = mp3._tag_at(ours[0]) + 120
    assert int.from_bytes(ours[0][lame_tag + 21: lame_tag + 24], "big") >> 12 == mp3.ENCODER_DELAY


def test_a_track_joined_from_chunks_lame_made_in_this_process_decodes_exactly(tmp_path):
    from guidetrack import lame

    encoder = lame.encoder()
    assert encoder is not None
    audio = speechlike(7.7, seed=9)
    ours, theirs = io.BytesIO(), io.BytesIO()
    mp3.encode_parallel([audio], len(audio), lambda a: encoder.encode(a, 2, RATE, 128, None), 2, ours, chunk_frames=60)
    mp3.encode_parallel([audio], len(audio), lambda a: encode_chunk(a, tmp_path), 2, theirs, chunk_frames=60)
    decoded = decode(ours.getvalue(), tmp_path)
    assert len(decoded) == len(audio)  # the Info frame LAME wrote carries the delay and padding
    assert np.array_equal(decoded, decode(theirs.getvalue(), tmp_path))


def test_bitrates_are_read_as_ffmpeg_reads_them():
    from guidetrack.encode import _kbps

    assert (_kbps("128k"), _kbps("192K"), _kbps("96000"), _kbps(" 64k "), _kbps("1.5M")) == (128, 192, 96, 64, None)


@pytest.mark.parametrize("quality", [None, 4])  # 128 kbit/s, and VBR
def test_an_encode_takes_the_unchanged_chunks_from_the_file_it_replaces(quality, tmp_path):
    """The chunks whose input did not change are taken from the file being replaced (read where
    its Layout says, after its tags), and the file comes out byte for byte as a fresh encode;
    a damaged piece of the old file, or other settings, make those chunks again."""
    from guidetrack import lame

    encoder = lame.encoder()
    assert encoder is not None
    audio = speechlike(31.0, seed=11)
    chunk_frames = 200  # 5.2 s chunks: 6 of them

    def encode(pcm: np.ndarray, settings: bytes = b"128k", earlier: mp3.Earlier | None = None):
        out = io.BytesIO()
        layout = mp3.encode_parallel([pcm], len(pcm), lambda a: encoder.encode(a, 2, RATE, 128, quality), 2, out,
                                     chunk_frames, settings=settings, earlier=earlier)
        return out.getvalue(), layout

    first, layout = encode(audio)
    tag = b"ID3-like tag standing in front of the audio " * 3
    replaced = tmp_path / "old.mp3"
    replaced.write_bytes(tag + first)

    edited = audio.copy()
    edited[14 * RATE: 15 * RATE] *= 0.5  # one second, in the third chunk
    plan = mp3.chunks(len(audio), chunk_frames)
    unchanged = [c for c in plan if c.stop <= 14 * RATE or c.start >= 15 * RATE]
    assert len(plan) == 6 and len(unchanged) == 5  # the first chunk among them: its Info frame is taken too

    fresh, _ = encode(edited)
    with replaced.open("rb") as source:
        earlier = mp3.Earlier(source, len(tag), layout)
        again, _ = encode(edited, earlier=earlier)
    assert earlier.reused == len(unchanged)
    assert again == fresh  # the same bytes as an encode that took nothing

    with replaced.open("rb") as source:  # other settings: nothing is taken
        earlier = mp3.Earlier(source, len(tag), layout)
        encode(edited, settings=b"192k", earlier=earlier)
    assert earlier.reused == 0

    data = bytearray(replaced.read_bytes())
    data[len(tag) + layout.chunks[4].at + 500] ^= 0xFF  # a chunk damaged since: made again
    replaced.write_bytes(bytes(data))
    with replaced.open("rb") as source:
        earlier = mp3.Earlier(source, len(tag), layout)
        again, _ = encode(edited, earlier=earlier)
    assert earlier.reused == len(unchanged) - 1 and again == fresh
