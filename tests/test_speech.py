"""Speech: splitting, the clip cache and engine failures (a fake engine for the pure parts)."""

import sys

import numpy as np
import pytest

from guidetrack.errors import EngineError
from guidetrack.script import VoiceSpec
from guidetrack.speech import CLAUSE_GAP, SENTENCE_GAP, ClipCache, Speaker, split_speech
from helpers import ToneEngine


def speaker(tmp_path, engine, voice=VoiceSpec()):
    return Speaker(voice, ClipCache(tmp_path / "cache"), engine_for=lambda name: engine)


def test_split_at_sentences_then_clauses():
    text = ("Rest here. If your lower back is troubled, twisting in and out of the pose may not suit you, "
            "so go slowly and ask your teacher.")
    assert split_speech(text) == [
        ("Rest here.", SENTENCE_GAP),
        ("If your lower back is troubled, twisting in and out of the pose may not suit you,", CLAUSE_GAP),
        ("so go slowly and ask your teacher.", 0),
    ]
    assert all(len(chunk) <= 100 for chunk, _ in split_speech("word " * 90))


def test_clips_are_cached_across_speakers(tmp_path):
    engine = ToneEngine()
    first = speaker(tmp_path, engine).clip("Soften the jaw.")
    second_speaker = speaker(tmp_path, engine)
    second = second_speaker.clip("Soften the jaw.")
    assert engine.calls == ["Soften the jaw."]
    assert second_speaker.cache.hits == 1
    assert np.array_equal(first, second)
    assert len(first) == pytest.approx(len("Soften the jaw.") * 1000, abs=40)  # resampled to 44.1 kHz


@pytest.mark.parametrize("change", [{"voice": "en-gb"}, {"rate": 150}, {"volume": 0.5}])
def test_every_voice_setting_is_in_the_key(tmp_path, change):
    engine = ToneEngine()
    speaker(tmp_path, engine).clip("Rest.")
    speaker(tmp_path, engine, VoiceSpec(**{**VoiceSpec().__dict__, **change})).clip("Rest.")
    assert engine.calls == ["Rest.", "Rest."]


def test_engine_version_is_in_the_key(tmp_path):
    old, new = ToneEngine(), ToneEngine()
    new.version = "2"
    speaker(tmp_path, old).clip("Rest.")
    speaker(tmp_path, new).clip("Rest.")
    assert new.calls == ["Rest."]


def test_silent_output_is_an_engine_error(tmp_path):
    with pytest.raises(EngineError, match="silence for 'Rest.'"):
        speaker(tmp_path, ToneEngine(amplitude=0.0)).clip("Rest.")


def test_missing_output_is_an_engine_error(tmp_path):
    class Mute(ToneEngine):
        def synthesize(self, text, voice, path):
            pass

    with pytest.raises(EngineError, match="wrote no audio"):
        speaker(tmp_path, Mute()).clip("Rest.")


def test_cache_files_are_findable_by_name(tmp_path):
    speaker(tmp_path, ToneEngine()).clip("Let the legs grow heavy.")
    names = [p.name for p in (tmp_path / "cache").iterdir()]
    assert len(names) == 1 and names[0].startswith("let-the-legs-grow-heavy-") and names[0].endswith(".wav")


@pytest.mark.integration
def test_real_engine_speaks_and_hangs_are_reported(tmp_path, monkeypatch):
    from guidetrack.engines import pyttsx3_engine

    engine = pyttsx3_engine.Pyttsx3Engine()
    path = tmp_path / "a.wav"
    engine.synthesize("Breathe in.", VoiceSpec(), path)
    assert path.stat().st_size > 10_000
    # a hanging utterance: the worker kills it at the timeout, retries once, then names the text
    monkeypatch.setattr(pyttsx3_engine, "BASE_TIMEOUT", 0.0)
    monkeypatch.setattr(pyttsx3_engine, "PER_CHAR_TIMEOUT", 0.0)
    with pytest.raises(EngineError, match=r"could not speak 'Breathe out.'.*timed out"):
        engine.synthesize("Breathe out.", VoiceSpec(), tmp_path / "b.wav")
    engine.close()


@pytest.mark.integration
def test_same_text_same_samples_whatever_came_before(tmp_path):
    """espeak-ng keeps state between utterances; the fresh fork per utterance removes it."""
    from guidetrack.engines.pyttsx3_engine import Pyttsx3Engine

    engine = Pyttsx3Engine()
    for index, text in enumerate(["And out.", "Lie down on your back.", "And out."]):
        engine.synthesize(text, VoiceSpec(), tmp_path / f"{index}.wav")
    engine.close()
    assert (tmp_path / "0.wav").read_bytes() == (tmp_path / "2.wav").read_bytes()


_CHILD_READS = """
import contextlib, io, os, sys
import pyttsx3, pyttsx3.drivers.espeak
from guidetrack.engines import pyttsx3_worker as worker
if sys.argv[1] == "listed":
    worker._list_voices()
def reads():
    return int(next(line for line in open("/proc/self/io") if line.startswith("syscr")).split()[1])
pipe, end = os.pipe()
if os.fork() == 0:  # a child as the worker makes one
    with contextlib.redirect_stdout(io.StringIO()):
        before = reads()
        worker._speak(pyttsx3.init(), {"text": "Hold.", "path": sys.argv[2], "voice": "gmw/en-us", "rate": 150,
                                       "volume": 1.0})
    os.write(end, str(reads() - before).encode())
    os._exit(0)
os.close(end)
print(os.read(pipe, 100).decode())
"""


@pytest.mark.integration
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="espeak-ng through /proc")
def test_the_worker_reads_espeak_ngs_voices_once_for_all_its_children(tmp_path):
    """Setting a voice by name makes espeak-ng read its list of voices first, every voice file
    opened and read (about 400): the worker reads the list before it forks, and a child reads
    only its own voice and data. The same clip either way."""
    import subprocess

    def child_reads(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", _CHILD_READS, mode, str(tmp_path / f"{mode}.wav")],
                              capture_output=True, text=True, check=True)
        return int(done.stdout)

    listed, unlisted = child_reads("listed"), child_reads("unlisted")
    assert listed * 3 < unlisted, (listed, unlisted)
    assert (tmp_path / "listed.wav").read_bytes() == (tmp_path / "unlisted.wav").read_bytes()


_VOICES_BOTH_WAYS = """
import contextlib, io, json, os
import pyttsx3, pyttsx3.drivers.espeak
from guidetrack.engines import pyttsx3_worker as worker
listed = worker._list_voices()
pipe, end = os.pipe()
if os.fork() == 0:
    with contextlib.redirect_stdout(io.StringIO()):
        os.write(end, json.dumps(worker._voices(pyttsx3.init(), {})["voices"]).encode())
    os._exit(0)
os.close(end)
said = b""
while chunk := os.read(pipe, 1 << 16):
    said += chunk
print(json.dumps([listed, json.loads(said)]))
"""


@pytest.mark.integration
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="espeak-ng")
def test_the_worker_names_espeak_ngs_voices_as_pyttsx3_does():
    """The worker answers for the voices from the list it read, as a child's pyttsx3 gives them."""
    import json
    import subprocess

    listed, from_pyttsx3 = json.loads(subprocess.run([sys.executable, "-c", _VOICES_BOTH_WAYS], capture_output=True,
                                                     text=True, check=True).stdout)
    assert len(listed) > 50 and listed == from_pyttsx3


@pytest.mark.integration
def test_fresh_engines_give_the_same_samples(tmp_path):
    """The voice and its volume are settled in espeak-ng before the text is queued. Before that,
    about one run in twenty (two runs at once, seven clips each) gave one clip 1 dB louder: the
    volume set right after the voice change was lost. Six fresh engines, two at a time, must
    agree to the byte (this can miss a rare race, but it caught this one)."""
    from concurrent.futures import ThreadPoolExecutor

    from guidetrack.engines.pyttsx3_engine import Pyttsx3Engine

    texts = ["Hold.", "Breathe in.", "And out.", "Soften the jaw.", "Notice your feet, and let them go soft."]

    def run(index: int) -> list[bytes]:
        engine = Pyttsx3Engine()
        folder = tmp_path / str(index)
        folder.mkdir()
        engine.synthesize_many([(t, folder / f"{i}.wav") for i, t in enumerate(texts)], VoiceSpec())
        engine.close()
        return [(folder / f"{i}.wav").read_bytes() for i in range(len(texts))]

    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(run, range(6)))
    assert all(r == runs[0] for r in runs[1:])


def test_the_lexicon_is_applied_to_whole_words_longest_first():
    from guidetrack.speech import pronounce

    lexicon = (("Padangusthasana", "pah dahng"), ("Supta Padangusthasana", "soopta pah dahng"), ("asana", "ahsahnah"))
    assert pronounce("Come into supta padangusthasana, an asana; not asanas.", lexicon) == \
        "Come into soopta pah dahng, an ahsahnah; not asanas."
    assert pronounce("Rest.", ()) == "Rest."


def test_the_engine_is_given_the_pronounced_text_and_the_key_follows_it(tmp_path):
    engine = ToneEngine()
    plain = VoiceSpec()
    spelled = VoiceSpec(lexicon=(("Savasana", "shavaasana"),))
    speaker(tmp_path, engine, plain).clip("Lie in Savasana.")
    speaker(tmp_path, engine, spelled).clip("Lie in Savasana.")
    speaker(tmp_path, engine, spelled).clip("Lie in Savasana.")  # cached under the spoken text
    speaker(tmp_path, engine, VoiceSpec(pitch=30)).clip("Lie in Savasana.")  # pitch is in the key
    assert engine.calls == ["Lie in Savasana.", "Lie in shavaasana.", "Lie in Savasana."]


@pytest.mark.integration
def test_real_engine_follows_rate_and_lexicon(tmp_path):
    """Measured on espeak-ng's output: the spoken length follows the rate, and a lexicon word
    sounds different from the raw word."""
    from guidetrack.engines.pyttsx3_engine import Pyttsx3Engine

    engine = Pyttsx3Engine()
    sentence = "Let the floor hold the whole weight of your back, and let the breath be slow."

    def spoken(voice: VoiceSpec, text: str) -> np.ndarray:
        return Speaker(voice, ClipCache(tmp_path / "cache"), engine_for=lambda name: engine).clip(text)

    slow, fast = spoken(VoiceSpec(rate=120), sentence), spoken(VoiceSpec(rate=180), sentence)
    assert 1.25 < len(slow) / len(fast) < 1.75, len(slow) / len(fast)  # 180/120 = 1.5, pauses aside
    raw = spoken(VoiceSpec(), "Rest in Savasana.")
    spelled = spoken(VoiceSpec(lexicon=(("Savasana", "shavaasana"),)), "Rest in Savasana.")
    assert len(raw) != len(spelled) or not np.array_equal(raw, spelled)
    # espeak-ng phoneme names in [[...]] are sounds, not read out bracket by bracket (which took
    # more than twice as long before the worker passed espeakPHONEMES)
    phonemes = spoken(VoiceSpec(lexicon=(("Savasana", (("pyttsx3", "[[S'A:v@s@n@]]"),)),)), "Rest in Savasana.")
    assert abs(len(phonemes) - len(spelled)) < 0.25 * len(spelled), (len(phonemes), len(spelled))
    engine.close()


@pytest.mark.integration
def test_each_clip_is_handed_on_as_soon_as_it_is_written(tmp_path):
    """The worker's answers come as its children finish: every item is told once, its file
    already written. A failure in what is done with a clip stops the worker (its other answers
    would meet the next requests) and is raised; the next request gets its own clip."""
    from guidetrack.engines.pyttsx3_engine import Pyttsx3Engine

    engine = Pyttsx3Engine()
    texts = ["Hold.", "Breathe in.", "And out.", "Soften the jaw.", "Rest.", "Let the shoulders drop."] * 3
    items = [(text, tmp_path / f"{i}.wav") for i, text in enumerate(texts)]
    told: list[int] = []

    def spoken(index: int) -> None:
        assert items[index][1].stat().st_size > 10_000
        told.append(index)

    engine.synthesize_many(items, VoiceSpec(), spoken)
    assert sorted(told) == list(range(len(items)))

    def failing(index: int) -> None:
        raise RuntimeError("the cache is gone")

    with pytest.raises(RuntimeError, match="the cache is gone"):
        engine.synthesize_many([(t, tmp_path / f"again{i}.wav") for i, t in enumerate(texts)], VoiceSpec(), failing)
    assert engine._worker is None
    engine.synthesize("Rest.", VoiceSpec(), tmp_path / "after.wav")
    assert (tmp_path / "after.wav").read_bytes() == (tmp_path / "4.wav").read_bytes()
    engine.close()


@pytest.mark.integration
def test_say_and_voices_commands(gt, tmp_path):
    from helpers import decode

    out = tmp_path / "line.wav"
    result = gt("say", "Rest in Savasana. [1s] Breathe.", "--voice", "soft-gb", "-o", out, check=True)
    assert "said as: Rest in shavaasana. [1s] Breathe." in result.stdout
    audio = decode(out)[:, 0]
    assert len(audio) > 2 * 44100 and np.abs(audio).max() > 0.1  # speech, with the pause inside
    listing = gt("voices", check=True).stdout
    assert "pyttsx3" in listing and "en-us" in listing
    assert all(name in listing for name in ("calm", "clear", "soft-gb"))
    missing = gt("say", "Hello.", "--voice", "whisper", "-o", tmp_path / "x.wav")
    assert missing.returncode == 2 and "unknown voice profile 'whisper'" in missing.stderr
    assert not (tmp_path / "x.wav").exists()


@pytest.mark.integration
def test_a_crashed_worker_is_restarted_and_the_utterance_retried(tmp_path):
    import signal
    import threading

    from guidetrack.engines.pyttsx3_engine import Pyttsx3Engine

    engine = Pyttsx3Engine()
    engine.voice_ids()  # the worker is up
    worker = engine._worker
    texts = [(f"Breath number {i}, long and slow, all the way out.", tmp_path / f"{i}.wav") for i in range(12)]
    threading.Timer(0.05, lambda: worker.send_signal(signal.SIGKILL)).start()  # it dies mid-batch
    engine.synthesize_many(texts, VoiceSpec())
    assert engine.restarts == 1
    assert all(path.stat().st_size > 10_000 for _, path in texts)
    engine.close()


def test_a_killed_writers_half_entry_is_cleared_and_a_live_ones_kept(tmp_path):
    import os

    from guidetrack.speech import ClipCache

    cache = ClipCache(tmp_path)
    import time

    dead = tmp_path / ".rest-abc.wav.999999999.abcd1234.part"
    live = tmp_path / f".rest-def.wav.{os.getpid()}.abcd1234.part"
    for temp in (dead, live):
        temp.write_bytes(b"half")
        os.utime(temp, (time.time() - 3600, time.time() - 3600))
    cache.put(tmp_path / "rest-abc.wav", np.zeros(100, np.float32))
    assert not dead.exists() and live.exists() and (tmp_path / "rest-abc.wav").is_file()


def test_the_first_clip_stored_is_the_one_every_process_uses(tmp_path):
    """Two processes speaking the same new text with an engine that varies (Piper): the second
    finds the first's entry when it stores its own, and uses it, so its plan's timing is the
    clip it will read back."""
    cache = ClipCache(tmp_path / "cache")
    path = cache.path("Rest.", "k" * 24)
    first, second = np.full(1000, 0.1, np.float32), np.full(1500, 0.2, np.float32)
    assert len(cache.put(path, first)) == 1000
    assert len(cache.put(path, second)) == 1000  # the first writer's
    path.write_bytes(b"damaged")
    assert len(cache.put(path, second)) == 1500  # a damaged entry is replaced


def test_a_worker_that_dies_is_reported_as_a_crash_with_what_it_said(tmp_path, monkeypatch):
    """A worker that exits at once: the error says it crashed (not that it timed out) and quotes
    its stderr, tried twice."""
    import sys

    from guidetrack.engines.worker import WorkerEngine

    (tmp_path / "dying_worker.py").write_text(
        "import sys\nprint('the model file is missing: /nowhere/voice.onnx', file=sys.stderr)\nsys.exit(3)\n")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{':'.join(sys.path)}")

    class Dying(WorkerEngine):
        name = "dying"
        worker_module = "dying_worker"
        install_hint = "nothing to install"

        def request(self, text, path, voice):
            return {"text": text, "path": str(path)}

        def timeout(self, text):
            return 30.0

    engine = Dying()
    try:
        with pytest.raises(EngineError) as caught:
            engine.synthesize("Rest.", VoiceSpec(), tmp_path / "x.wav")
    finally:
        engine.close()
    message = str(caught.value)
    assert "crashed" in message and "timed out" not in message, message
    assert "the model file is missing: /nowhere/voice.onnx" in message, message


def test_lengths_can_be_estimated_without_speaking(tmp_path):
    """For `serve`'s picture at once: a cached clip by its length, a new one at the pace of those."""
    engine = ToneEngine()
    known = speaker(tmp_path, engine).clip("Soften the jaw.")
    fresh = speaker(tmp_path, engine)
    found = fresh.estimated_lengths(["Soften the jaw.", "Soften the jaw and the eyes."])
    assert engine.calls == ["Soften the jaw."]  # spoken once, for the first speaker: the estimate spoke nothing
    assert found["Soften the jaw."] == len(known) and fresh.estimated == 1
    pace = len(known) / len("Soften the jaw.")
    assert found["Soften the jaw and the eyes."] == pytest.approx(len("Soften the jaw and the eyes.") * pace, abs=1)
    assert fresh.lengths(["Soften the jaw and the eyes."])  # the exact length, now spoken
    assert engine.calls == ["Soften the jaw.", "Soften the jaw and the eyes."]


def test_a_clips_levels_are_kept_by_its_samples_and_checked(tmp_path, monkeypatch):
    """A render with one new line reads the other clips' levels from the cache: kept under the
    digest of the very samples, read back equal, worked out again when damaged, and never
    taken for a clip whose samples changed."""
    from guidetrack import speech
    from guidetrack.speech import ClipLevels

    text = "Soften the jaw. Let the shoulders rest, and breathe."
    first = speaker(tmp_path, ToneEngine())
    made = first.levels(text)
    expected = ClipLevels.of(first.clip(text))
    assert np.array_equal(made.energy, expected.energy) and np.array_equal(made.power, expected.power)
    assert (made.length, made.active, made.every) == (expected.length, expected.active, expected.every)
    kept = list((tmp_path / "cache" / "levels").iterdir())
    assert len(kept) == 1

    def never(clip):
        raise AssertionError("worked out again")

    monkeypatch.setattr(speech.ClipLevels, "of", classmethod(lambda cls, clip: never(clip)))
    again = speaker(tmp_path, ToneEngine())
    again.lengths([text])  # a render reads its clips for their lengths first, as the plan does
    read = again.levels(text)
    assert np.array_equal(read.energy, made.energy) and read.active == made.active
    monkeypatch.undo()

    kept[0].write_bytes(kept[0].read_bytes()[:-1] + b"x")  # damaged: worked out again, and replaced
    assert ClipLevels.from_bytes(kept[0].read_bytes()) is None
    third = speaker(tmp_path, ToneEngine())
    third.lengths([text])
    assert np.array_equal(third.levels(text).energy, made.energy)
    assert ClipLevels.from_bytes(kept[0].read_bytes()) is not None

    louder = speaker(tmp_path, ToneEngine())  # the same text, other samples (an entry made again)
    doubled = 2 * first.clip("Soften the jaw.")
    for path in (tmp_path / "cache").glob("*.wav"):
        path.unlink()
    assert louder.cache.put(louder._entry("Soften the jaw."), doubled) is doubled
    louder.lengths([text])
    assert louder.levels(text).active[0] > made.active[0]
    assert len(list((tmp_path / "cache" / "levels").iterdir())) == 2


def test_the_engine_starts_while_the_cache_is_read_only_when_there_is_something_to_say(tmp_path):
    class Starting(ToneEngine):
        def __init__(self):
            super().__init__()
            self.events = []

        def ensure_started(self):
            self.events.append("start")

        def synthesize_many(self, items, voice, spoken=None):
            self.events.append("speak")
            super().synthesize_many(items, voice, spoken)

    engine = Starting()
    speaker(tmp_path, engine).lengths(["Soften the jaw.", "Rest."])
    assert engine.events == ["start", "speak"]
    again = Starting()
    speaker(tmp_path, again).lengths(["Soften the jaw.", "Rest."])  # all in the cache: nothing started
    assert again.events == [] and again.calls == []


def test_levels_prepared_on_threads_are_those_worked_out_one_by_one(tmp_path):
    """A first render works out its texts' levels on every core (`prepare_levels`), more than
    one batch of them: each is what `levels` alone gives, kept in the cache, and read from it."""
    from guidetrack.speech import LEVELS_AT_ONCE

    texts = [f"Line {i}. Let the breath be slow{', and easy' * (i % 3)}." for i in range(LEVELS_AT_ONCE + 5)]
    threaded = speaker(tmp_path / "a", ToneEngine())
    threaded.prepare_levels([*texts, *texts[:3]])
    alone = speaker(tmp_path / "b", ToneEngine())
    for text in texts:
        alone.levels(text)
    kept = sorted(p.name for p in (tmp_path / "a" / "cache" / "levels").iterdir())
    assert kept == sorted(p.name for p in (tmp_path / "b" / "cache" / "levels").iterdir()) and len(kept) > 3
    for text in texts:
        mine, theirs = threaded.levels(text), alone.levels(text)
        assert np.array_equal(mine.energy, theirs.energy) and np.array_equal(mine.power, theirs.power)
        assert (mine.length, mine.active, mine.every) == (theirs.length, theirs.active, theirs.every)
    again = speaker(tmp_path / "a", ToneEngine())
    again.prepare_levels(texts)  # all kept: read, none worked out
    assert all(np.array_equal(again.levels(t).energy, alone.levels(t).energy) for t in texts)


def test_kept_levels_with_values_no_clip_could_have_are_not_trusted():
    import hashlib
    import struct

    from guidetrack.speech import ClipLevels

    good = ClipLevels.of((np.sin(np.arange(44_100)) * 0.3).astype(np.float32))
    assert ClipLevels.from_bytes(good.to_bytes()) is not None

    def forged(**changes) -> bytes:
        head = dict(length=good.length, active=good.active, every=good.every, power=good.power, energy=good.energy)
        head.update(changes)
        body = struct.pack("<4sIQdQdQ", b"gtlv", 1, head["length"], head["active"][0], head["active"][1],
                           head["every"][0], head["every"][1])
        body += np.asarray(head["power"], "<f8").tobytes() + np.asarray(head["energy"], "<f8").tobytes()
        return body + hashlib.sha256(body).digest()

    assert ClipLevels.from_bytes(forged()) is not None
    for bad in (forged(energy=np.full(len(good.energy), np.nan)), forged(power=-good.power),
                forged(active=(good.active[0], good.length + 1)), forged(every=(float("inf"), good.length)),
                forged(every=(good.every[0], good.length - 1)), forged()[:-1] + b"x", b"", b"gtlv"):
        assert ClipLevels.from_bytes(bad) is None
