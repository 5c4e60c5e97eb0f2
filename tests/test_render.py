"""Render real scripts with espeak-ng (through pyttsx3) and ffmpeg, then measure the files."""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest
from mutagen.id3 import ID3

from helpers import SCRIPTS, SESSIONS, decode, ffprobe_duration, guidetrack, plan_json, plan_of, seed_cache, window_db
from meter import lufs, speech_lufs, true_peak

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def short(run_once, cache_dir):
    """tests/scripts/short.yaml rendered once in the run (whichever worker comes first), with its
    plan: (the file, the plan, the decoded audio, what the render printed)."""

    def make(folder):
        rendered = guidetrack("render", SCRIPTS / "short.yaml", "-o", folder / "short.mp3", cache=cache_dir, check=True)
        (folder / "stderr.txt").write_text(rendered.stderr)
        plan = guidetrack("plan", SCRIPTS / "short.yaml", "--json", cache=cache_dir, check=True).stdout
        (folder / "plan.json").write_text(plan)

    folder = run_once("render-short", make)
    out, plan = folder / "short.mp3", json.loads((folder / "plan.json").read_text())
    assert plan_of(SCRIPTS / "short.yaml", cache_dir) == plan  # what the other tests use instead of the command
    return out, plan, decode(out), (folder / "stderr.txt").read_text()


def test_length_matches_duration(short):
    out, plan, audio, _ = short
    assert plan["duration"] == 50.0
    assert abs(ffprobe_duration(out) - 50.0) < 0.1
    assert abs(len(audio) / 44100 - 50.0) < 0.1


def test_speech_starts_where_the_plan_says(short):
    _, plan, audio, _ = short
    speech = [e for e in plan["events"] if e["kind"] == "speech"]
    assert len(speech) == 1 + 1 + 4 + 2 + 2  # say (2 parts), breath cues, sides x (say + reminder)
    for event in speech:
        start = event["start"]
        before = window_db(audio, start - 0.12, start - 0.02)
        after = window_db(audio, start, start + min(0.3, event["duration"]))
        assert after > -40, (event, after)
        assert after - before > 15, (event, before, after)


def test_silence_where_the_plan_says(short):
    _, plan, audio, _ = short
    sounding = sorted((e["start"], e["start"] + e["duration"]) for e in plan["events"])
    gaps = []
    previous_end = 0.0
    for start, end in sounding:
        if start - previous_end > 0.6:
            gaps.append((previous_end + 0.15, start - 0.05))
        previous_end = max(previous_end, end)
    assert len(gaps) >= 5
    for begin, end in gaps:
        assert window_db(audio, begin, end) < -60, (begin, end)


def test_tags(short):
    out, _, _, _ = short
    tags = ID3(out)
    assert tags.version[:2] == (2, 4)
    assert str(tags["TIT2"]) == "Short Test Session"
    assert str(tags["TPE1"]) == "Test Teacher"
    assert str(tags["TALB"]) == "Test Album"
    assert str(tags.getall("COMM")[0]) == "A short script that uses every step kind."


def test_breath_cues_fall_on_the_grid(short):
    _, plan, _, _ = short
    cues = [e["start"] for e in plan["events"] if e.get("text") in ("Breathe in", "And out")]
    assert np.allclose(np.diff(cues), [4, 6, 4], atol=1e-6)


def test_second_render_reuses_the_cache_and_gives_the_same_bytes(gt, tmp_path, short):
    again = tmp_path / "again.mp3"
    result = gt("render", SCRIPTS / "short.yaml", "-o", again, check=True)
    assert "(0 new," in result.stderr, result.stderr
    assert again.read_bytes() == short[0].read_bytes()
    for suffix in (".vtt", ".srt", ".chapters.json"):
        assert again.with_name("again" + suffix).read_bytes() == short[0].with_name("short" + suffix).read_bytes()


def test_the_voice_is_at_the_target_with_true_peak_below_minus_one(short):
    _, plan, audio, stderr = short
    assert abs(speech_lufs(audio, plan) - (-16.0)) < 0.5, speech_lufs(audio, plan)
    assert true_peak(audio) <= -1.0
    printed = re.search(r"measured: speech (-[\d.]+) LUFS, programme (-[\d.]+) LUFS", stderr)
    assert abs(float(printed.group(1)) - speech_lufs(audio, plan)) <= 0.2, stderr
    assert abs(float(printed.group(2)) - lufs(audio)) <= 0.2, stderr


def test_chapters_match_the_plan(short):
    out, plan, _, _ = short
    tags = ID3(out)
    (toc,) = tags.getall("CTOC")
    chapters = [tags[f"CHAP:{element}"] for element in toc.child_element_ids]
    assert [(str(c.sub_frames["TIT2"]), c.start_time, c.end_time) for c in chapters] == [
        (c["title"], int(c["start"] * 1000), int(c["end"] * 1000)) for c in plan["chapters"]]
    assert [c["title"] for c in plan["chapters"]] == ["Arrive", "Breathe"]
    podcast = json.loads(out.with_name("short.chapters.json").read_text())
    assert podcast["version"] == "1.2.0"
    assert [(c["title"], c["startTime"]) for c in podcast["chapters"]] == [
        (c["title"], round(c["start"], 3)) for c in plan["chapters"]]


def test_transcripts_match_the_plan(short):
    out, plan, _, _ = short
    speech = [e for e in plan["events"] if e["kind"] == "speech"]
    vtt = out.with_name("short.vtt").read_text()
    assert vtt.startswith("WEBVTT\n")
    cues = re.findall(r"(\d\d):(\d\d):(\d\d)\.(\d{3}) --> [\d:.]+\n(.+)", vtt)
    assert [(int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000, text) for h, m, s, ms, text in cues] == [
        (int(e["start"] * 1000) / 1000, e["text"]) for e in speech]
    srt = out.with_name("short.srt").read_text()
    assert srt.count(" --> ") == len(speech) and srt.startswith("1\n00:00:")


def test_a_generated_cover_is_embedded(short):
    out, _, _, _ = short
    (cover,) = ID3(out).getall("APIC")
    assert cover.mime == "image/png" and cover.data.startswith(b"\x89PNG") and cover.type == 3
    from io import BytesIO

    from PIL import Image

    image = Image.open(BytesIO(cover.data))
    assert image.size == (1400, 1400)
    assert len(image.convert("RGB").resize((8, 8)).getcolors()) > 4  # a picture, not a blank square


@pytest.mark.parametrize("args, suffix, codec, loudness, channels", [
    (["--format", "wav"], ".wav", "pcm_s16le", -16, 2),
    (["--format", "opus"], ".opus", "opus", -16, 2),
    (["--format", "m4a"], ".m4a", "aac", -16, 2),
    (["--mono", "--vbr", "4", "--sample-rate", "22050"], ".mp3", "mp3", -19, 1),
    (["--loudness", "-23"], ".mp3", "mp3", -23, 2),
])
def test_output_settings(gt, tmp_path, short, args, suffix, codec, loudness, channels):
    out = tmp_path / f"short{suffix}"
    gt("render", SCRIPTS / "short.yaml", "-o", out, *args, check=True)
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(out)],
        capture_output=True, text=True, check=True).stdout)
    stream = probe["streams"][0]
    assert stream["codec_name"] == codec and stream["channels"] == channels
    if "--sample-rate" in args:
        assert stream["sample_rate"] == "22050"
    assert abs(float(probe["format"]["duration"]) - 50.0) < 0.1
    tags = {k.lower(): v for k, v in probe["format"].get("tags", {}).items()}
    tags.update({k.lower(): v for k, v in stream.get("tags", {}).items()})
    assert tags.get("title") == "Short Test Session", tags
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-f", "f32le", "-ac", str(channels), "-ar", "44100",
                          "-"], capture_output=True, check=True).stdout
    audio = np.frombuffer(raw, np.float32).reshape(-1, channels)
    plan = short[1]  # the same script's plan: output settings do not change the timeline
    assert abs(speech_lufs(audio, plan) - loudness) < 0.5, speech_lufs(audio, plan)
    assert true_peak(audio) <= -1.0


def test_damaged_cache_entry_is_remade(gt, tmp_path):
    cache = seed_cache(tmp_path / "cache", SCRIPTS / "short.yaml", gt.cache)  # its own, to damage
    first = tmp_path / "first.mp3"
    gt("render", SCRIPTS / "short.yaml", "-o", first, cache=cache, check=True)
    entries = sorted(cache.glob("*.wav"))
    assert entries
    victim = entries[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # truncated
    flipped = entries[1]
    data = bytearray(flipped.read_bytes())
    data[200] ^= 0xFF  # one corrupted sample
    flipped.write_bytes(bytes(data))
    second = tmp_path / "second.mp3"
    result = gt("render", SCRIPTS / "short.yaml", "-o", second, cache=cache, check=True)
    assert "(2 new," in result.stderr, result.stderr
    assert np.array_equal(decode(first), decode(second))


@pytest.mark.slow(28)
def test_the_ten_minute_session(gt, tmp_path):
    out = tmp_path / "legs.mp3"
    gt("render", SESSIONS / "legs-up-the-wall.yaml", "--variant", "standard", "-o", out, check=True)
    assert abs(ffprobe_duration(out) - 600.0) < 0.1
    audio = decode(out)
    plan = plan_json(gt, SESSIONS / "legs-up-the-wall.yaml")
    # brown noise under everything, well below the voice
    quiet = window_db(audio, 300.0, 302.0)
    loud = max(window_db(audio, e["start"], e["start"] + e["duration"]) for e in plan["events"] if e["kind"] == "speech")
    assert -70 < quiet < loud - 15
    assert [c["title"] for c in plan["chapters"]] == [
        "Before you begin", "Setting up", "Breathing with long exhales", "Resting in the pose", "Options", "Coming out"]


def test_invalid_script_exits_2_with_file_and_line(gt, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("guidetrack: 1\ntitle: T\nsteps:\n  - breathe: {pattern: boxx, cycles: 2}\n")
    out = tmp_path / "bad.mp3"
    result = gt("render", bad, "-o", out)
    assert result.returncode == 2
    assert f"{bad}:4:24:" in result.stderr and "did you mean 'box'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_impossible_duration_exits_2(gt, tmp_path):
    bad = tmp_path / "long.yaml"
    bad.write_text("guidetrack: 1\ntitle: T\nduration: 1h\nsteps:\n  - say: Rest.\n  - hold: {for: 1m, max: 2m}\n")
    result = gt("render", bad, "-o", tmp_path / "x.mp3")
    assert result.returncode == 2
    assert "long.yaml:3:11: cannot fit duration" in result.stderr and "and 2:0" in result.stderr


def test_background_file_is_looped(gt, tmp_path):
    loop = tmp_path / "rain.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "anoisesrc=d=3:c=pink:r=22050:s=7",
                    str(loop)], check=True)
    script = tmp_path / "bed.yaml"
    script.write_text("guidetrack: 1\ntitle: Bed\nbackground: {sound: rain.wav, level: -20, fade_in: 1s}\n"
                      "steps:\n  - say: Rest here.\n  - pause: 10s\n")
    out = tmp_path / "bed.mp3"
    gt("render", script, "-o", out, check=True)
    audio = decode(out)
    # the 3 s file keeps sounding for the whole 10 s pause, at a steady level
    levels = [window_db(audio, t, t + 1) for t in (3, 5, 7, 9, 10)]
    assert max(levels) - min(levels) < 3, levels
    speech = next(e for e in plan_json(gt, script)["events"] if e["kind"] == "speech")
    voice = window_db(audio, speech["start"], speech["start"] + speech["duration"])
    assert all(voice - 25 < level < voice - 4 for level in levels), (voice, levels)


def test_undecodable_background_exits_2(gt, tmp_path):
    (tmp_path / "broken.mp3").write_bytes(b"this is not audio" * 100)
    script = tmp_path / "s.yaml"
    script.write_text("guidetrack: 1\ntitle: T\nbackground: {sound: broken.mp3}\nsteps:\n  - say: Rest.\n")
    result = gt("render", script, "-o", tmp_path / "x.mp3")
    assert result.returncode == 2 and "cannot decode" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--format", "flac"], "--format flac: choose one of mp3, wav, opus, m4a"),
    (["--loudness", "3"], "--loudness: loudness 3 is out of range: choose between -70 and -5 LUFS"),
    (["--loudness", "loud"], "--loudness: 'loud' is not a loudness"),
    (["--sample-rate", "0"], "--sample-rate 0: an MP3 can be 8000"),
    (["--sample-rate", "1000000000"], "--sample-rate 1000000000: an MP3 can be"),
    (["--bitrate", "abc"], "--bitrate abc: give kilobits a second"),
    (["--format", "opus"], "-o {out} and --format opus disagree: name the file x.opus"),
])
def test_bad_output_settings_exit_2(gt, tmp_path, args, message):
    result = gt("render", SCRIPTS / "short.yaml", "-o", tmp_path / "x.mp3", *args)
    message = message.format(out=tmp_path / "x.mp3")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not list(tmp_path.iterdir())


def test_a_given_cover_is_embedded(gt, tmp_path):
    from PIL import Image

    Image.new("RGB", (600, 600), (10, 120, 90)).save(tmp_path / "art.png")
    script = tmp_path / "c.yaml"
    script.write_text("guidetrack: 1\ntitle: Cover\ncover: art.png\nsteps:\n  - say: Rest.\n")
    out = tmp_path / "c.mp3"
    gt("render", script, "-o", out, check=True)
    (cover,) = ID3(out).getall("APIC")
    assert cover.mime == "image/png" and cover.data == (tmp_path / "art.png").read_bytes()



def test_a_render_over_its_last_file_encodes_only_the_minutes_that_changed(gt, tmp_path):
    """Rendered again to the same file, the one-minute MP3 chunks whose samples did not change
    are taken from the file it replaces: all of them when nothing changed, all but the last
    when the end changed. Either way the file is byte for byte what a render into a new file
    gives, and it is measured."""
    script = tmp_path / "s.yaml"
    body = ("guidetrack: 1\ntitle: Three minutes\nvoice: calm\n"
            "background: {sound: brown-noise, level: -30, fade_in: 4s, fade_out: 6s}\nsteps:\n"
            "  - chime\n  - say: Lie down and let the floor hold you.\n  - pause: 50s\n"
            "  - say: Let the breath be slow and easy.\n  - pause: 50s\n"
            "  - say: Rest here a little longer.\n  - pause: PAUSE\n  - chime\n")
    out = tmp_path / "s.mp3"

    def render(to, pause: str) -> tuple[int, int, str]:
        script.write_text(body.replace("PAUSE", pause))
        done = gt("render", script, "-o", to, "--json", check=True)
        [written] = json.loads(done.stdout)
        return written["kept_chunks"], written["chunks"], done.stderr

    assert render(out, "40s")[:2] == (0, 3)  # 2:3x: three chunks, the last one longer
    kept, chunks, said = render(out, "40s")  # nothing changed
    assert (kept, chunks) == (3, 3)
    assert "3 of 3 one-minute chunks unchanged, taken from the file it replaces" in said
    kept, chunks, said = render(out, "55s")  # the end is 15 s later: the last minute, and the fade-out, change
    assert chunks in (3, 4) and kept == 2  # the first two minutes are as they were
    assert f"2 of {chunks} one-minute chunks unchanged" in said
    render(tmp_path / "new.mp3", "55s")
    assert out.read_bytes() == (tmp_path / "new.mp3").read_bytes()
    assert abs(ffprobe_duration(out) - ffprobe_duration(tmp_path / "new.mp3")) < 1e-6
    assert abs(speech_lufs(decode(out), plan_of(script, gt.cache)) - (-16.0)) <= 0.5
