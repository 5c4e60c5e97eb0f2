"""The command line: the only module that prints or exits (with an `ExitCode`).

The same option means the same thing in every command: -o/--out is where to write, --variant
chooses variants (repeatable), --cache-dir is the clip cache, --json prints what was done on
stdout; -v/--verbose (before the command) logs what guidetrack runs.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .errors import ExitCode, GuidetrackError, InvalidInput, Severity
from .units import SAMPLE_RATE, format_clock, to_seconds

if TYPE_CHECKING:
    from .plan import Plan

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Turn yoga, relaxation and breathwork scripts into breath-paced MP3 tracks.",
)

CacheOption = Annotated[Optional[Path], typer.Option(
    "--cache-dir", help="Where spoken clips are cached (default: the user cache dir, or $GUIDETRACK_CACHE_DIR).")]


def _version(show: bool) -> None:
    if show:
        from . import __version__

        typer.echo(f"guidetrack {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what guidetrack runs and decides (stderr).")]
        = False,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print guidetrack's version and exit.")] = None,
) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    # guidetrack's own debug lines with --verbose; other libraries' only when they warn
    logging.getLogger("guidetrack").setLevel(logging.DEBUG if verbose else logging.WARNING)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _guarded(action: Callable[[], ExitCode | None]) -> None:
    """Run a command, turning our errors into a message and an exit code, never a traceback."""
    try:
        code = action() or ExitCode.OK
    except InvalidInput as err:
        for problem in err.problems:
            _say(f"error: {problem}" if problem.where is None else str(problem))
        code = ExitCode.INVALID
    except GuidetrackError as err:
        _say(f"error: {err}")
        code = ExitCode.FAILED
    except KeyboardInterrupt:
        _say("interrupted; nothing was left half-written")
        code = ExitCode.INTERRUPTED
    except OSError as err:  # the machine, not the script: a full disk, a read-only folder
        where = f"{err.filename}: " if err.filename else ""
        _say(f"error: {where}{err.strerror or err}")
        code = ExitCode.FAILED
    raise typer.Exit(int(code))


def _warn(plan) -> None:
    for warning in plan.warnings:
        _say(str(warning))


LibraryOption = Annotated[Optional[Path], typer.Option(
    help="The library folder the script is part of: its includes may reach anywhere in it, as in `build` "
         "(default: the script's own folder).")]
VariantOption = Annotated[Optional[list[str]], typer.Option(
    "--variant", help="Only this variant (repeat for several; default: every variant).")]


def _load(script: Path, variants: list[str] | None, library: Path | None = None):
    from .script import load, load_all

    if variants:
        return [load(script, name, library) for name in dict.fromkeys(variants)]
    return load_all(script, library)


FormatOption = Annotated[Optional[str], typer.Option(
    "--format", "-f", help="mp3, wav, opus (Ogg Opus) or m4a (AAC); default: the -o file's suffix, or mp3.")]
BitrateOption = Annotated[Optional[str], typer.Option(help="Constant bitrate for mp3, opus and m4a (default 128k).")]
VbrOption = Annotated[Optional[int], typer.Option(
    min=0, max=9, help="MP3 variable bitrate quality, 0 (best) to 9, instead of --bitrate.")]
MonoOption = Annotated[bool, typer.Option("--mono", help="One channel (a preset's mono target: -19 LUFS for podcast).")]
SampleRateOption = Annotated[Optional[int], typer.Option(
    help="Output sample rate in Hz (default 44100, or the loudness preset's; Opus is always 48000).")]
def _presets_help() -> str:
    from .loudness import PRESETS

    return "; ".join(f"{p.name}: {p.about}" for p in PRESETS.values())


LoudnessOption = Annotated[Optional[str], typer.Option(
    help="The voice's loudness in LUFS, or a preset (" + _presets_help() + "; podcast is the default). "
         "Overrides the script's `loudness`.")]


MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)  # what MPEG audio allows


def _output(audio_format: str | None, bitrate: str | None, vbr: int | None, mono: bool, sample_rate: int | None,
            loudness: str | None, out: Path | None = None):
    """The output settings, checked. Without --format, an output file's suffix chooses it."""
    from .encode import FORMATS, Format, Output
    from .loudness import parse_loudness

    by_suffix = {suffix: name for name, (suffix, *_) in FORMATS.items()}
    named = by_suffix.get(out.suffix.lower()) if out is not None and out.suffix else None
    if audio_format is None:
        if out is not None and out.suffix and named is None:
            raise InvalidInput(f"-o {out}: guidetrack writes {', '.join(by_suffix)} files; "
                               "name the file with one of these suffixes")
        audio_format = named or "mp3"
    if audio_format not in FORMATS:
        raise InvalidInput(f"--format {audio_format}: choose one of {', '.join(FORMATS)}")
    chosen = Format(audio_format)
    if out is not None and out.suffix and named != audio_format:
        raise InvalidInput(f"-o {out} and --format {audio_format} disagree: name the file "
                           f"{out.with_suffix(FORMATS[chosen][0]).name}, or leave out --format")
    unused = [flag for flag, given, applies in (
        ("--vbr", vbr is not None, chosen is Format.MP3),
        ("--bitrate", bitrate is not None, chosen is not Format.WAV and vbr is None),
        ("--sample-rate", sample_rate is not None, chosen is not Format.OPUS),
    ) if given and not applies]
    if unused:
        why = {"--vbr": "is for MP3 only", "--bitrate": "has no bitrate for WAV, nor beside --vbr",
               "--sample-rate": "is for formats other than Opus, which is always 48000 Hz"}
        raise InvalidInput(f"{unused[0]} {why[unused[0]]}; leave it out for {chosen.value}")
    bitrate = bitrate or "128k"
    if not re.fullmatch(r"\d{1,3}k", bitrate) or not 8 <= int(bitrate[:-1]) <= 320:
        raise InvalidInput(f"--bitrate {bitrate}: give kilobits a second, from 8k to 320k (128k is usual)")
    if sample_rate is not None:
        allowed = MP3_RATES if chosen is Format.MP3 else range(8000, 192_001)
        if sample_rate not in allowed:
            raise InvalidInput(f"--sample-rate {sample_rate}: " + (
                f"an MP3 can be {', '.join(map(str, MP3_RATES))} Hz" if chosen is Format.MP3
                else "choose between 8000 and 192000 Hz"))
    target = None
    if loudness is not None:
        try:
            target = parse_loudness(loudness)
        except ValueError as err:
            raise InvalidInput(f"--loudness: {err}") from None
    return Output(chosen, bitrate, vbr, 1 if mono else 2, sample_rate, target)


@app.command()
def render(
    script: Annotated[Path, typer.Argument(help="The sequence script (YAML).")],
    out: Annotated[Optional[Path], typer.Option(
        "-o", "--out", help="Output MP3 (default out/<slug>.mp3 in the current folder; with variants, "
                            "<name>-<variant>.mp3).")] = None,
    variant: VariantOption = None,
    audio_format: FormatOption = None,
    bitrate: BitrateOption = None,
    vbr: VbrOption = None,
    mono: MonoOption = False,
    sample_rate: SampleRateOption = None,
    loudness: LoudnessOption = None,
    cache_dir: CacheOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written and its measured loudness "
                                          "as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress while rendering.")] = False,
    library: LibraryOption = None,
) -> None:
    """Render SCRIPT to audio (MP3 by default), one file per variant, with transcripts and chapters beside it."""

    def action() -> None:
        from .render import output_path
        from .render import render as render_script

        output = _output(audio_format, bitrate, vbr, mono, sample_rate, loudness, out)
        scripts = _load(script, variant, library)
        written = []
        from .progress import stages_for
        from .report import SILENT

        for one in scripts:
            started = time.perf_counter()
            target = output_path(one, out, len(scripts) > 1, output)
            stages = stages_for(sys.stderr, quiet)
            if stages is not None and len(scripts) > 1:
                _say(f"{target}:")
            try:
                result = render_script(one, target, cache_dir, output, stages or SILENT)
            finally:
                if stages is not None:
                    stages.close()
            _warn(result.plan)
            spoken = result.cache_hits + result.cache_misses
            _say(
                f"wrote {result.out}  {format_clock(result.samples)}  "
                f"{len(result.plan.speech())} cues, {spoken} distinct utterances "
                f"({result.cache_misses} new, {result.cache_hits} cached)  "
                + (f"{result.kept} of {result.chunks} one-minute chunks unchanged, taken from the file it replaces  "
                   if result.kept else "")
                + f"in {time.perf_counter() - started:.1f} s\n"
                f"  measured: {result.figures}  (the voice's target: {result.target_lufs:g} LUFS)"
            )
            for problem in result.problems:
                _say(f"warning: {result.out}: {problem}")
            if result.cache_problem:
                _say(f"warning: clips were not cached ({result.cache_problem}); the next render speaks them again")
            written.append({"out": str(result.out), "variant": one.variant, "duration": to_seconds(result.samples),
                            "target_lufs": result.target_lufs, **result.figures.to_json(),
                            "encodes": result.encodes, "kept_chunks": result.kept, "chunks": result.chunks,
                            "problems": list(result.problems)})
        if as_json:
            typer.echo(json.dumps(written, indent=2, ensure_ascii=False))

    _guarded(action)


def _check_base_url(url: str) -> None:
    """The address the build folder is served at: an absolute http(s) URL of a folder."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
        bad = (parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment
               or any(ch.isspace() or ord(ch) < 32 for ch in url))
    except ValueError:
        bad = True
    if bad:
        raise InvalidInput(f"--base-url {url!r}: give the address the output folder is served at, "
                           "such as https://example.org/classes/ (http or https, no spaces, no ?query or #part)")


@app.command()
def build(
    library: Annotated[Path, typer.Argument(help="The library folder: every script in it and below "
                                                "(default: sessions, in the current folder).")] = Path("sessions"),
    out: Annotated[Path, typer.Option("-o", "--out", help="The output folder; it mirrors the library's layout "
                                                          "(default: out/library, in the current folder).")]
        = Path("out/library"),
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", min=1, help="Renders at once (default: one a core).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild everything, changed or not.")] = False,
    base_url: Annotated[Optional[str], typer.Option(
        help="Where the output folder will be served (https://.../); writes feed.xml, and is remembered.")] = None,
    title: Annotated[Optional[str], typer.Option(help="The library's title in the feed and index.html.")] = None,
    scheduler: Annotated[Optional[str], typer.Option(
        help="Render on a Dask cluster: the scheduler's address, tcp://HOST:PORT (extra: cluster).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")] = False,
    audio_format: FormatOption = None,
    bitrate: BitrateOption = None,
    vbr: VbrOption = None,
    mono: MonoOption = False,
    sample_rate: SampleRateOption = None,
    loudness: LoudnessOption = None,
    cache_dir: CacheOption = None,
) -> None:
    """Render every script and variant under LIBRARY that changed since the last build, in parallel,
    then write catalog.json, index.html and (with --base-url) a podcast feed."""

    def action() -> ExitCode:
        from .build import build as build_library
        from .progress import reporter_for, summary_table

        output = _output(audio_format, bitrate, vbr, mono, sample_rate, loudness)
        if scheduler is not None:
            ignored = [flag for flag, given in (("--jobs", jobs), ("--cache-dir", cache_dir)) if given is not None]
            if ignored:
                raise InvalidInput(f"{' and '.join(ignored)} cannot be used with --scheduler: the cluster's "
                                   "workers decide how many renders run, and each keeps its own clip cache "
                                   "($GUIDETRACK_CACHE_DIR on the worker)")
        if base_url is not None:
            _check_base_url(base_url)
        if title is not None and (not title.strip() or any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in title)):
            raise InvalidInput(f"--title {title!r}: give a title of plain text, without control characters")
        reporter = reporter_for(sys.stderr)
        summary = build_library(library, out, output=output, jobs=jobs, force=force, cache_dir=cache_dir,
                                scheduler=scheduler, base_url=base_url, title=title, reporter=reporter)
        if as_json:
            typer.echo(json.dumps(summary.to_json(), indent=2, ensure_ascii=False))
        summary_table(summary, out, sys.stderr)
        if summary.interrupted:
            return ExitCode.INTERRUPTED
        return ExitCode.FAILED if summary.failed else ExitCode.OK

    _guarded(action)


@app.command()
def plan(
    script: Annotated[Path, typer.Argument(help="The sequence script (YAML).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the timeline as JSON.")] = False,
    svg: Annotated[bool, typer.Option("--svg", help="Draw the session as an SVG picture (to -o, or stdout).")] = False,
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Where to write the --svg picture.")] = None,
    variant: Annotated[Optional[list[str]], typer.Option(
        "--variant", help="This variant (repeat for several; default: the first). With several, --json "
                          "prints a list.")] = None,
    cache_dir: CacheOption = None,
    library: LibraryOption = None,
) -> None:
    """Print SCRIPT's timeline: when each cue, chime and tone starts, without rendering audio."""

    def action() -> None:
        from .render import plan_script

        scripts = _load(script, variant, library) if variant else _load(script, None, library)[:1]
        timelines = [plan_script(one, cache_dir)[0] for one in scripts]
        if out is not None and not svg:
            raise InvalidInput("-o is where --svg writes its picture: add --svg (plan prints its timeline on stdout)")
        if svg:
            from .files import write_atomically
            from .picture import session_svg

            if len(timelines) > 1 and out is not None:
                raise InvalidInput("--svg -o FILE draws one variant: name one with --variant")
            for timeline in timelines:
                picture = session_svg(timeline)
                if out is None:
                    typer.echo(picture, nl=False)
                else:
                    write_atomically(out, picture.encode("utf-8"))
                    _say(f"wrote {out}")
            return
        if as_json:
            shown = [t.to_json() for t in timelines]
            typer.echo(json.dumps(shown if variant and len(variant) > 1 else shown[0], indent=2, ensure_ascii=False))
            return
        for timeline in timelines:
            _warn(timeline)
            typer.echo(f"{timeline.script.title}  ({format_clock(timeline.length)})")
            typer.echo(f"  {_summary(timeline)}")
            for start, _, text in sorted(_timeline_lines(timeline)):
                typer.echo(f"{format_clock(start):>9}  {text}")

    _guarded(action)


def _summary(timeline: Plan) -> str:
    """Speech, silence and breath-guided time, and the pace, in one line."""
    from .plan import Kind, SpanKind

    speech = sum(e.length for e in timeline.events if e.kind is Kind.SPEECH)
    breath = sum(s.length for s in timeline.spans if s.kind is SpanKind.BREATHE)
    words = sum(len(e.text.split()) for e in timeline.events if e.kind is Kind.SPEECH)
    minutes = speech / SAMPLE_RATE / 60
    pace = f", {words / minutes:.0f} words a minute while speaking" if minutes else ""
    return (f"speech {format_clock(speech)}, breath-guided {format_clock(breath)}, "
            f"quiet {format_clock(max(timeline.length - speech, 0))}{pace}")


def _timeline_lines(timeline: Plan) -> list[tuple[int, int, str]]:
    """(start, order, text) for every chapter, event, hold, pause, breath and side, and the bed's fades."""
    from .plan import SpanKind

    lines = [(c.start, 0, f"== {c.title} ==") for c in timeline.chapters]
    lines += [(e.start, 2, f"{e.kind:7} {e.text}") for e in timeline.events]
    for span in timeline.spans:
        clock = format_clock(span.length)
        if span.kind is SpanKind.SIDE:
            lines.append((span.start, 1, f"-- {span.label} side --"))
        elif span.kind is SpanKind.HOLD:
            moved = span.length - span.nominal
            fitted = (f" (written {format_clock(span.nominal)}, fitting {'added' if moved > 0 else 'took'} "
                      f"{format_clock(abs(moved))})" if moved else "")
            bounds = f" [min {format_clock(span.low)}, max {format_clock(span.high)}]" if span.low != span.high else ""
            lines.append((span.start, 1, f"hold    {clock}{fitted}{bounds}"))
        elif span.kind is SpanKind.BREATHE:
            lines.append((span.start, 1, f"breathe {span.label} ({clock})"))
        else:
            lines.append((span.start, 1, f"pause   {clock}"))
    background = timeline.script.background
    if background is not None:
        start, end = timeline.bed
        name = background.sound.rsplit("/", 1)[-1]
        fade_in = f", fading in over {format_clock(background.fade_in)}" if background.fade_in else ""
        lines.append((start, 1, f"bed     {name} starts{fade_in}"))
        if background.fade_out:
            lines.append((end - background.fade_out, 1, f"bed     {name} fades out over {format_clock(background.fade_out)}"))
        lines.append((end, 3, f"bed     {name} ends"))
    return lines


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Scripts, blocks, or folders of them.")],
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")] = False,
    cache_dir: CacheOption = None,
    library: LibraryOption = None,
) -> None:
    """Check scripts and blocks (format, includes, audio files, fitting) without rendering audio."""

    def action() -> ExitCode:
        from .render import check_file, script_files
        from .script import FileKind

        files = failed = 0
        for path, root in script_files(paths):
            files += 1
            checked = check_file(path, root or library, cache_dir)
            for problem in checked.problems:
                if strict and problem.severity is Severity.WARNING:
                    problem = replace(problem, severity=Severity.ERROR)
                _say(str(problem) if problem.where else f"error: {problem}")
            if checked.failed(strict):
                failed += 1
            elif checked.kind is not FileKind.SCRIPT:
                typer.echo(f"ok  {path}  ({checked.kind.value})")
            for timeline in checked.plans:
                if not checked.failed(strict):
                    label = f" [{timeline.script.variant}]" if timeline.script.variant else ""
                    typer.echo(f"ok  {path}{label}  ({format_clock(timeline.length)}, "
                               f"{to_seconds(timeline.length):.1f} s)")
        if not files:
            _say("error: no scripts found (looked for .yaml and .yml files)")
            return ExitCode.INVALID
        if len(paths) > 1 or any(p.is_dir() for p in paths):
            _say(f"{files} files checked, {failed} with problems")
        return ExitCode.INVALID if failed else ExitCode.OK

    _guarded(action)


@app.command()
def voices() -> None:
    """List the speech engines on this machine, their voices, and the voice profiles."""

    def action() -> ExitCode:
        from .engines import ENGINES, engine_version, get_engine, piper_voices
        from .script import voice_folders, voice_profiles

        typer.echo("engines:")
        for name in ENGINES:
            try:
                engine_version(name)  # says how to install a missing engine, without starting one
                engine = get_engine(name)
                ids = [v.rsplit("/", 1)[-1] for v in engine.voice_ids()]
            except GuidetrackError as err:
                typer.echo(f"  {name:<9} not available: {err}")
                continue
            info = ENGINES[name]
            if info.voices == "any":
                english = [v for v in ids if v[:3].startswith("en")]
                shown = f"{len(ids)} voices; English: {', '.join(english)}"
            else:
                aliases = {full: short for short, full in piper_voices.ALIASES.items()} if name == "piper" else {}
                shown = "voices: " + (", ".join(f"{v} ({aliases[v]})" if v in aliases else v for v in ids)
                                      or "none installed")
            if info.voices == "bundled":
                shown += " (inside the package; none is ever downloaded)"
            if info.voices == "models":
                shown += "".join(f"\n            {m}" for f in voice_folders() if f.is_dir() for m in sorted(f.glob("*.onnx")))
            typer.echo(f"  {name:<9} {engine.version}\n            {shown}")
        from .languages import known
        from .languages import parse as parse_language

        typer.echo("languages (language: TAG in a script; its cues, counts and sides, and espeak-ng's voice):")
        tags = known()
        for tag in (t for t in tags if "-" not in t):
            language = parse_language(tag)
            words = language.words
            regions = ", ".join(f"{t} ({parse_language(t).espeak})" for t in tags if t.startswith(f"{tag}-"))
            typer.echo(f"  {tag:<3} {language.name:<11} espeak-ng {language.espeak:<6} "
                       f"{' / '.join(words.cues)}; {words.first_count('in')}, {', '.join(words.numbers[:2])}...; "
                       f"{' / '.join(words.sides)}" + (f"\n      also {regions}" if regions else ""))
        typer.echo("profiles (voice: NAME in a script, whose voices/ folder or its library's overrides these; "
                   "`say --voice NAME` looks in ./voices/):")
        from .script import DEFAULT_VOICE, ESPEAK_VOICE

        default = {DEFAULT_VOICE: "  (the default in English)", ESPEAK_VOICE: "  (the default in other languages)"}
        for name, path in voice_profiles(voice_folders()).items():
            spec = _profile_or_problem(name)
            if isinstance(spec, str):
                typer.echo(f"  {name:<10} {path}\n             {spec}")
                continue
            pitch = f", pitch {spec.pitch}" if spec.pitch is not None else ""
            typer.echo(f"  {name:<10} {spec.engine} {spec.voice}, {spec.rate} wpm, volume {spec.volume:g}{pitch}, "
                       f"{len(spec.lexicon)} lexicon entries{default.get(name, '')}\n"
                       f"             {path}")
        return ExitCode.OK

    _guarded(action)


def _profile_or_problem(name: str):
    from .script import load_profile

    try:
        return load_profile(name)
    except InvalidInput as err:
        return "; ".join(str(p) for p in err.problems)


@app.command()
def say(
    text: Annotated[str, typer.Argument(help="What to say; [2s] is a pause, as in scripts.")],
    voice: Annotated[Optional[str], typer.Option(
        "--voice", help="A voice profile (see `guidetrack voices`); default: gentle, or calm in another language.")] = None,
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write the WAV clip.")] = Path("out/say.wav"),
    language: Annotated[Optional[str], typer.Option(
        "--language", help="The text's language, as a script's `language:` (de, es, pt-BR...): an English "
                           "espeak-ng voice speaks in the language's voice instead.")] = None,
    cache_dir: CacheOption = None,
) -> None:
    """Speak one line with a voice profile, to hear it before rendering a whole script."""

    def action() -> ExitCode:
        import numpy as np

        from .files import replacing
        from .languages import is_english
        from .script import DEFAULT_VOICE, ESPEAK_VOICE, load_profile, split_inline
        from .speech import ClipCache, Speaker, pronounce
        from .units import SAMPLE_RATE

        english = is_english(language)
        name = voice or (DEFAULT_VOICE if english else ESPEAK_VOICE)
        spec = load_profile(name)
        if language is not None:
            from .languages import parse as parse_language
            from .script import voice_in_language

            try:
                spec = voice_in_language(spec, parse_language(language))
            except ValueError as err:
                raise InvalidInput(f"--language: {err}") from None
        speaker = Speaker(spec, ClipCache(cache_dir))
        try:
            parts = split_inline(text)
        except ValueError as err:
            raise InvalidInput(f"the text: {err}") from None
        pieces = [speaker.clip(p) if isinstance(p, str) else np.zeros(p, np.float32) for p in parts]
        if not pieces:
            raise InvalidInput("there is nothing to say")
        audio = np.concatenate(pieces)
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
        import wave

        out.parent.mkdir(parents=True, exist_ok=True)
        with replacing(out) as temp, wave.open(str(temp), "wb") as clip:
            clip.setnchannels(1)
            clip.setsampwidth(2)
            clip.setframerate(SAMPLE_RATE)
            clip.writeframes(pcm)
        said = pronounce(text, spec.lexicon, spec.engine)
        typer.echo(f"wrote {out}  {len(audio) / SAMPLE_RATE:.2f} s  voice {name}: {spec.engine} {spec.voice}, "
                   f"{spec.rate} wpm" + (f"\n  said as: {said}" if said != text else ""))
        return ExitCode.OK

    _guarded(action)


@app.command()
def serve(
    library: Annotated[Path, typer.Argument(help="A library folder, or one script.")] = Path("sessions"),
    port: Annotated[int, typer.Option(min=0, max=65535, help="The port to listen on; 0 for any free one.")] = 8000,
    host: Annotated[str, typer.Option(help="The address to listen on. The default is this machine only; "
                                            "0.0.0.0 shows the library to the whole network.")] = "127.0.0.1",
    cache_dir: CacheOption = None,
) -> None:
    """Preview LIBRARY (default: sessions in the current folder) in a browser while you write:
    a page per script with its picture, problems, chapters, transcript and a player. Each save is
    checked at once and rendered in the background; the page follows without a reload."""

    def action() -> None:
        from .serve import serve as serve_library

        try:
            serve_library(library, host, port, cache_dir, announce=_say)
        except KeyboardInterrupt:
            _say("stopped")

    _guarded(action)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the script format, for editors (YAML language server)."""
    from .script import json_schema

    typer.echo(json.dumps(json_schema(), indent=2, ensure_ascii=False))


def main() -> None:
    # A polite kill (SIGTERM, or the terminal closing) unwinds like Ctrl-C, so temporary files
    # are removed; what a kill -9 left is removed by the next run.
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # under nohup, a closed terminal is ignored
        signal.signal(signal.SIGHUP, _interrupt)
    from .files import remove_stale_folders
    from .render import free_memory_promptly

    free_memory_promptly()

    try:
        remove_stale_folders()
    except KeyboardInterrupt:
        raise SystemExit(ExitCode.INTERRUPTED) from None
    app(prog_name="guidetrack")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
