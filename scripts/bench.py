"""Render timings as ratios against floors measured in the same run: each render is timed right
after the floor, RUNS times, and the median ratio printed.

- cold render (empty clip cache) vs the whole floor: ffmpeg encoding the same PCM with the
  same settings + the session's engine (hibari) speaking every unique utterance; and the same
  session with espeak-ng's voice vs the encode + one espeak-ng process speaking them all;
- warm render (full cache) vs the encode floor, into a new file and over its own file;
- edit render (one line changed: one new clip, a new mix) vs the encode floor, over the last
  render's file (a teacher's loop: the unchanged minutes are taken from it) and into a new file;
- each engine's speed, in seconds of speech made a second, against espeak-ng's own
  command speaking the same utterances;
- peak memory of an 8-hour track (the render process, and ffmpeg beside it);
- building a library (sessions/ plus one test script: 14 renders, 7 with --quick) with 1 worker
  and with 2, from the same warm clip cache, and the no-change rebuild;
- the voices (`--voices`): the same 20 lines of the library spoken by each engine's profile, with
  a predicted MOS (DNSMOS P.808, from speechmos: its ONNX models are inside its wheel), the word
  error rate of an offline recogniser (pocketsphinx, whose English model is inside its wheel),
  speed and load time.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5  # each render, with its floor, is timed this many times: this machine's speed drifts by 10% and more
SESSION = ROOT / "sessions" / "legs-up-the-wall.yaml"


def timed(command: list[str], env: dict | None = None, stdin=None) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{result.stderr.decode(errors='replace')}")
    return time.perf_counter() - started


def render_command(script: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "guidetrack", "render", str(script), "--variant", "standard", "-o", str(out)]


def floor_pcm(work: Path, cache: Path) -> tuple[Path, list[str]]:
    """The session's mix as raw PCM, for the encode floor, and its unique utterances."""
    from guidetrack.mix import mix
    from guidetrack.render import plan_script
    from guidetrack.script import load
    from guidetrack.speech import split_speech

    plan, speaker = plan_script(load(SESSION, "standard"), cache)
    raw = work / "track.pcm"
    with raw.open("wb") as out:
        for block in mix(plan, speaker.clip):
            out.write(block.astype("<f4").tobytes())
    return raw, sorted({c for e in plan.speech() for c, _ in split_speech(e.text)})


def encode_floor(work: Path, raw: Path) -> float:
    """One timing of ffmpeg's libmp3lame encoding the mix, at the render's settings."""
    from guidetrack.encode import encoder_command

    with raw.open("rb") as source:
        return timed(encoder_command(str(work / "floor.mp3")), stdin=source)


def speak_floor(work: Path, chunks: list[str]) -> float:
    """espeak-ng's own command speaking every utterance, with the espeak-ng profile's voice and pace."""
    from guidetrack.script import load_profile

    voice = load_profile("calm")
    text = work / "utterances.txt"
    text.write_text("\n\n".join(chunks))
    return min(timed(["espeak-ng", "-v", voice.voice, "-s", str(voice.rate), "-f", str(text), "-w",
                      str(work / "all.wav")]) for _ in range(RUNS))


VOICE_OF_SESSION = "gentle"  # legs-up-the-wall's voice profile (hibari)


def engine_speeds(work: Path, chunks: list[str], profiles: list[str] | None = None) -> list[tuple[str, float, float]]:
    """(engine (profile), seconds of speech, seconds taken) for each engine's ready profile speaking
    `chunks` into an empty cache: worker start and model loading included, as in a cold render."""
    from guidetrack.script import load_profile
    from guidetrack.speech import ClipCache, Speaker
    from guidetrack.units import SAMPLE_RATE

    speeds = []
    for profile in profiles or ["calm", "natural"]:
        voice = load_profile(profile)
        speaker = Speaker(voice, ClipCache(work / f"engine-{profile}-{time.monotonic_ns()}"))
        started = time.perf_counter()
        speech = sum(speaker.lengths(chunks).values()) / SAMPLE_RATE
        speeds.append((f"{voice.engine} ({profile})", speech, time.perf_counter() - started))
        speaker.engine.close()
    return speeds


EIGHT_HOURS = """\
guidetrack: 1
title: Eight-hour sleep track
duration: 8h
background: {sound: brown-noise, level: -20, fade_in: 30s, fade_out: 5m}
steps:
  - chime
  - say: Settle in for a long rest. [2s] Let the breath be slow and easy.
  - breathe: {pattern: relax, cycles: 12, cue: words}
  - hold:
      for: 7h
      min: 1h
      max: 9h
      reminders: [Let the body grow heavy., Soften the jaw., Rest.]
  - chime
"""

MEASURE = """
import resource, sys
from guidetrack.cli import main
sys.argv = ["guidetrack", "render", sys.argv[1], "-o", sys.argv[2]]  # no variants: one track
try:
    main()
except SystemExit:
    pass
self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(self_kb, child_kb)
"""


def _library_lines(count: int = 20) -> list[str]:
    """`count` sentences of the library's narration, 5 to 16 words each, in the order written."""
    import re

    from guidetrack.script import Say, Section, Sides, load
    from guidetrack.speech import split_speech

    lines: list[str] = []

    def walk(steps) -> None:
        for step in steps:
            if isinstance(step, Say):
                for chunk, _ in split_speech(re.sub(r"\[[^\]]*\]", " ", step.text)):
                    if 5 <= len(chunk.split()) <= 16 and "{" not in chunk and chunk not in lines:
                        lines.append(chunk)
            elif isinstance(step, (Section, Sides)):
                walk(step.steps)

    for script in sorted((ROOT / "sessions").glob("*.yaml")):
        if "language:" not in script.read_text():
            walk(load(script).steps)
    return lines[::max(1, len(lines) // count)][:count]


def _words(text: str) -> list[str]:
    import re

    return re.findall(r"[a-z']+", text.lower())


def _edit_distance(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def voice_quality(work: Path) -> None:
    """Each engine's profile speaking the same lines: predicted MOS, word error rate, speed, load."""
    try:
        from pocketsphinx import Decoder
        from speechmos import dnsmos
    except ImportError:
        sys.exit("--voices needs the bench extra: .venv/bin/pip install -e '.[bench]'")
    from scipy.signal import resample_poly

    from guidetrack.errors import GuidetrackError
    from guidetrack.script import load_profile
    from guidetrack.speech import ClipCache, Speaker
    from guidetrack.units import SAMPLE_RATE

    lines = _library_lines()
    recogniser = Decoder(samprate=16000, loglevel="FATAL")
    print(f"voices, speaking the same {len(lines)} lines of the library (DNSMOS P.808 predicts a listener's "
          "1-5 score; WER by pocketsphinx):")
    print(f"  {'profile':<9} {'engine':<8} {'MOS':>5} {'WER':>6} {'speech/s':>9} {'load s':>7}")
    for profile in ("calm", "natural", "gentle"):
        voice = load_profile(profile)
        speaker = Speaker(voice, ClipCache(work / f"voices-{profile}"))
        try:
            started = time.perf_counter()
            speaker.lengths(["Rest."])  # starts the worker and loads the model
            load = time.perf_counter() - started
            started = time.perf_counter()
            clips = [speaker.clip(line) for line in lines]
            seconds = time.perf_counter() - started
        except GuidetrackError as err:
            print(f"  {profile:<9} {voice.engine:<8} not available: {str(err).splitlines()[0][:80]}")
            continue
        finally:
            if speaker._engine is not None:
                speaker.engine.close()
        scores, errors, words = [], 0, 0
        for line, clip in zip(lines, clips, strict=True):
            audio = resample_poly(clip, 160, 441).astype("float32")
            audio = audio / max(1.0, float(abs(audio).max()))
            scores.append(dnsmos.run(audio, 16000)["p808_mos"])
            recogniser.start_utt()
            recogniser.process_raw((audio * 32767).astype("<i2").tobytes(), full_utt=True)
            recogniser.end_utt()
            heard = recogniser.hyp().hypstr if recogniser.hyp() else ""
            errors += _edit_distance(_words(line), _words(heard))
            words += len(_words(line))
        speech = sum(len(c) for c in clips) / SAMPLE_RATE
        print(f"  {profile:<9} {voice.engine:<8} {sum(scores) / len(scores):5.2f} {errors / words:6.1%} "
              f"{speech / seconds:9.1f} {load:7.2f}")


def library_builds(work: Path, env: dict, quick: bool) -> None:
    """1 worker vs 2 on the same renders (a warm clip cache for both: the first build warms it),
    then a rebuild with nothing changed."""
    library = work / "library"
    shutil.copytree(ROOT / "sessions", library)
    shutil.copy(ROOT / "tests" / "scripts" / "short.yaml", library / "short.yaml")
    if quick:  # the short variants only
        for script in library.glob("*.yaml"):
            text = script.read_text()
            if "variants:" in text:
                lines = [line for line in text.splitlines() if not line.startswith(("  standard:", "  long:"))]
                script.write_text("\n".join(lines) + "\n")
    build = [sys.executable, "-m", "guidetrack", "build", str(library), "--json"]
    warmup = subprocess.run([*build, "-o", str(work / "warm"), "--jobs", "2"], env=env, capture_output=True, text=True)
    count = len(__import__("json").loads(warmup.stdout)["built"])
    def with_cpu(command: list[str]) -> tuple[float, float]:
        """(seconds, seconds of CPU of the build and everything it started)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds = timed(command, env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return seconds, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime

    one, one_cpu = with_cpu([*build, "-o", str(work / "one"), "--jobs", "1"])
    two, two_cpu = with_cpu([*build, "-o", str(work / "two"), "--jobs", "2"])
    again = min(timed([*build, "-o", str(work / "two")], env) for _ in range(3))
    print(f"library build: {count} renders (warm clip cache); CPU as cores kept busy on average")
    print(f"  1 worker  {one:6.1f} s   CPU {one_cpu:6.1f} s = {one_cpu / one:4.2f} cores (each render encodes on every core)")
    print(f"  2 workers {two:6.1f} s   CPU {two_cpu:6.1f} s = {two_cpu / two:4.2f} cores   speed-up {one / two:4.2f}x "
          f"on {os.cpu_count()} cores")
    print(f"  no-change rebuild {again:5.2f} s   (target: about 1 s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true",
                        help="skip the 8-hour memory run, and build only the short variants")
    parser.add_argument("--voices", action="store_true", help="only compare the voices")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="guidetrack-bench-") as folder:
        work = Path(folder)
        if args.voices:
            voice_quality(work)
            return
        cache = work / "cache"
        env = {**os.environ, "GUIDETRACK_CACHE_DIR": str(cache)}
        session = work / "session"  # a copy, so that one line can be edited
        shutil.copytree(SESSION.parent, session)
        script = session / SESSION.name
        # a first cold render fills the cache the floor's mix and the warm renders read
        timed(render_command(script, work / "first.mp3"), env)
        raw, chunks = floor_pcm(work, cache)
        speak = speak_floor(work, chunks)
        engine_name, engine_speech, engine_seconds = min(  # the best of RUNS
            (engine_speeds(work, chunks, [VOICE_OF_SESSION])[0] for _ in range(RUNS)), key=lambda found: found[2])
        # the issue's own measure: with espeak-ng's voice, against espeak-ng speaking the same lines
        espeak = session / "espeak-ng.yaml"
        espeak.write_text(script.read_text().replace("\nvoice: gentle", "\nvoice: calm", 1))
        assert "\nvoice: calm" in espeak.read_text()

        def edited() -> None:
            """A teacher's edit: one line changed, so one new clip and a new mix."""
            text = script.read_text()
            line = next(ln for ln in text.splitlines() if ln.strip().startswith("- say: ") and ln.rstrip().endswith("."))
            script.write_text(text.replace(line, line.rstrip(".") + f", {next(words)}.", 1))

        words = iter(["slowly", "softly", "gently", "kindly", "calmly", "simply", "warmly", "freely"] * RUNS)
        # each render is timed right after the floor, so that both meet the machine at the same
        # moment (its speed drifts by 10% over minutes), and each ratio is of such a pair
        floors: list[float] = []
        found: dict[str, list[tuple[float, float]]] = {}

        def pair(kind: str, script_path: Path, out: Path, extra: float = 0.0, cache_dir: Path | None = None) -> None:
            floors.append(encode_floor(work, raw))
            seconds = timed(render_command(script_path, out),
                            env if cache_dir is None else {**env, "GUIDETRACK_CACHE_DIR": str(cache_dir)})
            found.setdefault(kind, []).append((seconds, seconds / (floors[-1] + extra)))

        for r in range(RUNS):
            pair("cold", script, work / f"cold{r}.mp3", engine_seconds, work / f"cold-cache{r}")
            pair("cold espeak", espeak, work / f"cold-espeak{r}.mp3", speak, work / f"espeak-cache{r}")
            pair("warm", script, work / f"warm{r}.mp3")  # into a new file: nothing to take from
            pair("own", script, work / f"warm{r}.mp3")  # over its own file, unchanged
            edited()  # rendered over the last render's file, as the teacher's loop does
            pair("edit", script, work / f"warm{r}.mp3")
            edited()  # into a new file, which has nothing to take from
            pair("edit new", script, work / f"edit{r}.mp3")

        def median(values: list[float]) -> float:
            return sorted(values)[len(values) // 2]

        def figure(kind: str) -> str:
            seconds, ratios = zip(*found[kind], strict=True)
            return f"{median(list(seconds)):6.2f} s   {median(list(ratios)):4.2f}x"

        encode = median(floors)
        print(f"session: {SESSION.relative_to(ROOT)} (10:00, {len(chunks)} unique utterances, voice "
              f"{VOICE_OF_SESSION}) on {os.cpu_count()} cores; medians of {RUNS} runs, each ratio against "
              "the floor timed just before it")
        print(f"  floor: ffmpeg's libmp3lame encoding the same PCM {encode:6.2f} s (from {min(floors):.2f} to "
              f"{max(floors):.2f} s); speaking every utterance into an empty cache: espeak-ng's command "
              f"{speak:5.2f} s, {engine_name} {engine_seconds:5.2f} s")
        print(f"  edit render  {figure('edit')} the encode floor   (one line changed, rendered over the last "
              "render's file; target <= 1.0x, goal 0.8x)")
        print(f"    into a new file {figure('edit new')}   (nothing to take from an earlier file)")
        print(f"  warm render  {figure('warm')} the encode floor   (into a new file; target <= 0.8x)")
        print(f"    over its own file {figure('own')}")
        print(f"  cold render  {figure('cold')} the encode floor + {engine_name} speaking   (target <= 1.1x)")
        print(f"    with espeak-ng's voice (calm) {figure('cold espeak')} the encode floor + espeak-ng's command "
              "speaking the same lines")
        with wave.open(str(work / "all.wav")) as said:  # pauses between utterances included
            spoken = said.getnframes() / said.getframerate()
        print(f"engines, speaking the same {len(chunks)} utterances (seconds of speech made a second):")
        print(f"  espeak-ng command  {spoken:6.1f} s of speech in {speak:5.2f} s = {spoken / speak:6.1f}  (the floor)")
        for name, speech, seconds in [(engine_name, engine_speech, engine_seconds), *engine_speeds(work, chunks)]:
            print(f"  {name:<17}  {speech:6.1f} s of speech in {seconds:5.2f} s = {speech / seconds:6.1f}  "
                  f"{speech / seconds / (spoken / speak):4.2f}x the floor")
        library_builds(work, env, args.quick)
        if not args.quick:
            script = work / "eight-hours.yaml"
            script.write_text(EIGHT_HOURS)
            started = time.perf_counter()
            result = subprocess.run([sys.executable, "-c", MEASURE, str(script), str(work / "eight.mp3")],
                                    env=env, check=True, capture_output=True, text=True)
            seconds = time.perf_counter() - started
            self_kb, child_kb = map(int, result.stdout.split())
            print(f"8-hour track: rendered in {seconds:.0f} s; peak memory {self_kb / 1024:.0f} MB "
                  f"(target < 300 MB), ffmpeg {child_kb / 1024:.0f} MB")


if __name__ == "__main__":
    main()
