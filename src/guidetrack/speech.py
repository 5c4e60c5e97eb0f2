"""Speech: text -> clip (mono float32 at SAMPLE_RATE), through a content-addressed cache.

The cache key covers everything that changes the sound: the text, the engine and
its version, voice, rate, volume and how clips are processed. Entries are WAV
files named `slug-hash` so a person can find them, each carrying a checksum chunk;
they are written atomically, and a damaged entry is detected and made again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import threading
import wave
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .engines import Engine, get_engine
from .engines.worker import WorkerEngine
from .errors import EngineError, InvalidInput
from .files import remove_stale_parts, temporary_folder, with_checksum, without_checksum, write_atomically, write_new
from .loudness import k_weighted_energy
from .report import SILENT, Progress
from .script import slugify
from .units import SAMPLE_RATE, Samples, db_to_gain
from .voice import Lexicon, VoiceSpec, said_by

CLIP_FORMAT = 3  # bump when clip processing changes (2: espeak-ng settles voice and volume first;
#                  3: resampled by soxr, whose filter is steeper than scipy's)
MAX_CHUNK = 100  # characters spoken in one engine call: longer text is split
SENTENCE_GAP = int(0.5 * SAMPLE_RATE)  # quiet between sentences spoken separately
CLAUSE_GAP = int(0.22 * SAMPLE_RATE)  # quiet where a long sentence is split at a comma
SILENCE_DB = -50.0  # below this (dBFS) counts as silence when trimming
EDGE_FADE = int(0.008 * SAMPLE_RATE)  # samples faded at each end so nothing clicks
_CHECKSUM_CHUNK = b"gtsm"
RECENT_SAMPLES = 120 * SAMPLE_RATE  # whole clips kept in memory (about 21 MB), the most recently used
ESTIMATED_PACE = 0.07 * SAMPLE_RATE  # samples a letter, for a clip not yet spoken when no other tells the pace
LEVELS_AT_ONCE = 16  # clips held at once while their levels are worked out on threads
FRAME = SAMPLE_RATE // 100  # 10 ms: the resolution at which a clip's levels are kept (and speech is found)
ACTIVE_DB = -40.0  # a sample louder than this (dBFS) is active speech, for the voice's reference level
LEVELS_FORMAT = 1  # bump when what ClipLevels holds, or how it is worked out, changes


def default_cache_dir() -> Path:
    override = os.environ.get("GUIDETRACK_CACHE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("guidetrack")) / "clips"


class ClipCache:
    def __init__(self, folder: Path | None = None):
        self.folder = Path(folder) if folder else default_cache_dir()
        if self.folder.exists() and not self.folder.is_dir():
            raise InvalidInput(f"the clip cache {self.folder} is a file, not a folder: name a folder "
                               "(--cache-dir or GUIDETRACK_CACHE_DIR)")
        self.hits = 0
        self.misses = 0
        self.repaired = 0
        self.unwritable = ""  # why entries could not be stored, if they could not
        self.digests: dict[Path, bytes] = {}  # the sha256 of each entry's samples this process read or stored
        self._swept = False

    @staticmethod
    def key(text: str, engine: Engine, voice: VoiceSpec) -> str:
        fields = {
            "text": text, "engine": engine.name, "engine_version": engine.version,
            "voice": engine.voice_key(voice), "rate": voice.rate, "volume": voice.volume, "pitch": voice.pitch,
            "clip_format": CLIP_FORMAT, "sample_rate": SAMPLE_RATE,
        }
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    def path(self, text: str, key: str) -> Path:
        return self.folder / f"{slugify(text)[:40]}-{key[:24]}.wav"

    def get(self, path: Path) -> np.ndarray | None:
        """The clip stored at `path`, or None when missing or damaged."""
        try:
            data = path.read_bytes()
        except OSError:
            return None
        clip = _decode_entry(data)
        if clip is None:
            self.repaired += 1
        else:
            self.digests[path] = data[-32:]  # checked by _decode_entry
        return clip

    def put(self, path: Path, clip: np.ndarray) -> np.ndarray | None:
        """Store a new clip; the clip the cache now holds at `path`: this one, or the one another
        process stored first (engines such as Piper say a text a little differently each time,
        and every process sharing the cache must time its plan by the clip it will read back).
        A damaged entry is replaced. None when nothing could be stored (a read-only or full
        cache): the render goes on without caching, and `unwritable` says why. The first write
        also clears what a killed writer left half-written (a live one's files are kept)."""
        if not self._swept and self.folder.is_dir():
            try:
                remove_stale_parts(self.folder)
            except OSError:
                pass
            self._swept = True
        entry = _encode_entry(clip)
        try:
            if write_new(path, entry, mode=None):
                self.digests[path] = entry[-32:]
                return clip
            first = self.get(path)
            if first is not None:
                return first
            write_atomically(path, entry, mode=None)
            self.digests[path] = entry[-32:]
            return clip
        except OSError as err:
            if not self.unwritable:
                self.unwritable = f"{path}: {err.strerror or err}"
            return None


def _to_length(clip: np.ndarray, length: Samples) -> np.ndarray:
    """A clip cut or padded with silence to `length`: a plan was timed by that length."""
    return np.pad(clip[:length], (0, max(length - len(clip), 0)))


def _to_int16(clip: np.ndarray) -> np.ndarray:
    return np.clip(np.round(clip * 32768.0), -32768, 32767).astype("<i2")


def _from_int16(pcm: np.ndarray) -> np.ndarray:
    return pcm.astype(np.float32) / 32768.0


def _encode_entry(clip: np.ndarray) -> bytes:
    pcm = _to_int16(clip).tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm)
    digest = hashlib.sha256(pcm).digest()
    body = buffer.getvalue() + _CHECKSUM_CHUNK + struct.pack("<I", len(digest)) + digest
    return body[:4] + struct.pack("<I", len(body) - 8) + body[8:]  # RIFF size covers the extra chunk


def _decode_entry(data: bytes) -> np.ndarray | None:
    trailer = len(_CHECKSUM_CHUNK) + 4 + 32
    if len(data) < 44 + trailer or data[-trailer:-36] != _CHECKSUM_CHUNK:
        return None
    try:
        with wave.open(io.BytesIO(data[:-trailer])) as source:
            if (source.getnchannels(), source.getsampwidth(), source.getframerate()) != (1, 2, SAMPLE_RATE):
                return None
            pcm = source.readframes(source.getnframes())
    except (wave.Error, EOFError, struct.error):
        return None
    if hashlib.sha256(pcm).digest() != data[-32:] or not pcm:
        return None
    return _from_int16(np.frombuffer(pcm, "<i2"))


# ---------------------------------------------------------------- a clip's levels


@dataclass(frozen=True)
class ClipLevels:
    """What setting the levels needs of a clip, in 10 ms frames: where it sounds (its power),
    how loud it is (its K-weighted energy, see `loudness.k_weighted_energy`) and its active
    speech level. Kept in the cache beside the clips (see `Speaker.levels`), so that a render
    with one new line reads the voice's loudness without metering every clip again."""

    length: Samples
    power: np.ndarray  # mean square in every whole FRAME
    energy: np.ndarray  # K-weighted sum of squares in every whole FRAME
    active: tuple[float, int]  # sum of squares and count of the samples louder than ACTIVE_DB
    every: tuple[float, int]  # ... of every sample

    @classmethod
    def of(cls, clip: np.ndarray) -> ClipLevels:
        frames = len(clip) // FRAME
        power = np.empty(frames)
        active, every = [0.0, 0], 0.0
        piece = FRAME * 1000  # ten seconds at a time: a long clip needs little memory
        for at in range(0, len(clip), piece):
            part = clip[at: at + piece]
            square = np.square(part, dtype=np.float64)
            loud = square[np.abs(part) > db_to_gain(ACTIVE_DB)]
            active[0] += float(loud.sum())
            active[1] += loud.size
            every += float(square.sum())
            whole = len(part) // FRAME
            power[at // FRAME: at // FRAME + whole] = square[: whole * FRAME].reshape(whole, FRAME).mean(axis=1)
        return cls(len(clip), power, k_weighted_energy(clip, FRAME), (active[0], int(active[1])), (every, len(clip)))

    _HEAD = struct.Struct("<4sIQdQdQ")

    def to_bytes(self) -> bytes:
        body = self._HEAD.pack(b"gtlv", LEVELS_FORMAT, self.length, self.active[0], self.active[1],
                               self.every[0], self.every[1])
        return with_checksum(body + self.power.astype("<f8").tobytes() + self.energy.astype("<f8").tobytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> ClipLevels | None:
        """The levels `to_bytes` wrote, or None for anything else (damaged, another format, or
        values no clip could have: nothing cached is trusted unchecked)."""
        size = cls._HEAD.size
        body = without_checksum(data)
        if body is None or len(body) < size:
            return None
        magic, form, length, active, loud, every, count = cls._HEAD.unpack_from(body)
        frames = length // FRAME
        if magic != b"gtlv" or form != LEVELS_FORMAT or len(body) != size + 16 * frames:
            return None
        arrays = np.frombuffer(body, "<f8", 2 * frames, size)
        sums = np.array([active, every, *arrays])
        if not (np.all(np.isfinite(sums)) and sums.min(initial=0.0) >= 0 and loud <= count == length):
            return None
        return cls(length, arrays[:frames], arrays[frames:], (active, loud), (every, count))


# ---------------------------------------------------------------- clip processing


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate from an engine's WAV file."""
    with wave.open(str(path)) as source:
        rate, width, channels = source.getframerate(), source.getsampwidth(), source.getnchannels()
        raw = source.readframes(source.getnframes())
    if width != 2:
        raise EngineError(f"the engine wrote {8 * width}-bit audio; expected 16-bit")
    audio = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    if channels > 1:
        audio = audio.reshape(-1, channels).mean(axis=1)
    return audio, rate


def process(audio: np.ndarray, rate: int) -> np.ndarray:
    """Trim silence at both ends, resample to SAMPLE_RATE, fade the edges."""
    loud = np.flatnonzero(np.abs(audio) > db_to_gain(SILENCE_DB))
    audio = audio[loud[0]: loud[-1] + 1]
    if rate != SAMPLE_RATE:
        import soxr  # libsoxr: very high quality, and 0.1 s to import where scipy.signal takes a second

        audio = soxr.resample(audio, rate, SAMPLE_RATE, quality="VHQ").astype(np.float32)
    fade = min(EDGE_FADE, len(audio) // 2)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        audio[:fade] *= ramp
        audio[-fade:] *= ramp[::-1]
    return audio


_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:—])\s+")


def split_speech(text: str, limit: int = MAX_CHUNK) -> list[tuple[str, Samples]]:
    """Text -> (chunk, quiet after it): sentences, and long sentences at clauses or words.

    The engine speaks each chunk separately: short calls are reliable and cache well.
    """
    chunks: list[tuple[str, Samples]] = []
    for sentence in filter(None, (s.strip() for s in _SENTENCE_END.split(text))):
        pieces = _pack(_CLAUSE_END.split(sentence), limit) if len(sentence) > limit else [sentence]
        pieces = [part for piece in pieces for part in (_pack(piece.split(), limit) if len(piece) > limit else [piece])]
        chunks.extend((piece, CLAUSE_GAP) for piece in pieces)
        chunks[-1] = (chunks[-1][0], SENTENCE_GAP)
    if chunks:
        chunks[-1] = (chunks[-1][0], 0)
    return chunks


def _pack(parts: list[str], limit: int) -> list[str]:
    """Join consecutive parts while they fit in `limit` characters."""
    packed: list[str] = []
    for part in parts:
        if packed and len(packed[-1]) + 1 + len(part) <= limit:
            packed[-1] += " " + part
        else:
            packed.append(part)
    return packed


def pronounce(text: str, lexicon: Lexicon, engine: str = "pyttsx3") -> str:
    """`text` with every lexicon word or phrase (whole words, any case) replaced by how to say
    it to `engine`; longer entries first, so "Supta Padangusthasana" wins over "Padangusthasana".
    An entry given per engine leaves the word as written for the engines it does not name."""
    given = {word.lower(): said_by(how, engine) for word, how in lexicon}
    said = {word: how for word, how in given.items() if how is not None}
    if not said:
        return text
    words = sorted(said, key=len, reverse=True)
    pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE)
    return pattern.sub(lambda match: said[match.group(0).lower()], text)


class Speaker:
    """Speaks a script's utterances in one voice, through the clip cache. The clip cache's key
    is the text as the engine is given it, after the lexicon: a changed pronunciation is a new clip."""

    def __init__(self, voice: VoiceSpec, cache: ClipCache | None = None,
                 engine_for: Callable[[str], Engine] = get_engine):
        self.voice = voice
        self.cache = cache or ClipCache()
        self._engine_for = engine_for
        self._engine: Engine | None = None
        # Memory does not grow with the script: a chunk the cache holds is remembered by its
        # length and read back when its clip is next wanted; only a chunk the cache could not
        # keep (a read-only cache folder) stays in memory, and a few whole clips are kept.
        self._lengths: dict[str, Samples] = {}  # what the engine speaks in one call -> its length
        self._held: dict[str, np.ndarray] = {}  # chunks the cache could not store
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()  # whole texts, joined from chunks
        self._levels: dict[str, ClipLevels] = {}  # whole texts' levels, read or worked out
        self.progress: Progress = SILENT
        self.estimated = 0  # distinct chunks `estimated_lengths` guessed, last time

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._engine_for(self.voice.engine)
            if isinstance(self._engine, WorkerEngine) and self._engine.keep_in is None:
                self._engine.keep_in = self.cache.folder / "engines"
        return self._engine

    def clip(self, text: str) -> np.ndarray:
        """The whole text spoken: its chunks with the quiet between them."""
        if text in self._recent:
            self._recent.move_to_end(text)
            return self._recent[text]
        pieces = []
        for chunk, quiet in split_speech(text):
            pieces += [self._fetch(chunk), np.zeros(quiet, np.float32)]
        if not pieces:
            raise EngineError(f"nothing to say in {text!r}")
        clip = np.concatenate(pieces) if len(pieces) > 2 else pieces[0]
        clip.flags.writeable = False  # handed out again from `_recent`
        self._recent[text] = clip
        while len(self._recent) > 1 and sum(map(len, self._recent.values())) > RECENT_SAMPLES:
            self._recent.popitem(last=False)
        return clip

    def levels(self, text: str) -> ClipLevels:
        """The levels of `clip(text)`, from the cache's `levels` folder when an earlier render
        worked them out for these very samples (keyed by the sha256 of its chunks' samples),
        else worked out from the clip, and kept there."""
        if text in self._levels:
            return self._levels[text]
        found, path = self._kept_levels(text)
        self._levels[text] = found if found is not None else self._keep_levels(path, ClipLevels.of(self.clip(text)))
        return self._levels[text]

    def prepare_levels(self, texts: Iterable[str], workers: int = 2) -> None:
        """Work out the levels of each of `texts` the cache does not hold, as `levels` would:
        the clips read here, in order, a few at a time, and their levels worked out on `workers`
        threads (numpy lets go of the GIL; render gives one a core), so that `levels` then finds
        them. A first render's 28 texts: 0.08 s on 2 cores, not 0.19 s."""
        todo = [text for text in dict.fromkeys(texts) if text not in self._levels]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="guidetrack-clip-levels") as pool:
            for at in range(0, len(todo), LEVELS_AT_ONCE):
                missing = []
                for text in todo[at: at + LEVELS_AT_ONCE]:
                    found, path = self._kept_levels(text)
                    if found is not None:
                        self._levels[text] = found
                    else:
                        missing.append((text, path, self.clip(text)))
                made = pool.map(ClipLevels.of, [clip for _, _, clip in missing])
                for (text, path, _), found in zip(missing, made, strict=True):
                    self._levels[text] = self._keep_levels(path, found)

    def _kept_levels(self, text: str) -> tuple[ClipLevels | None, Path | None]:
        """A text's levels as the cache keeps them (None if it does not), and where they are kept."""
        key = self._levels_key(text)
        if key is None:  # a chunk not read yet: read (or spoken) now, so that its digest is known
            self.clip(text)
            key = self._levels_key(text)
        path = self.cache.folder / "levels" / f"{key}.bin" if key else None
        if path is not None:
            try:
                return ClipLevels.from_bytes(path.read_bytes()), path
            except OSError:
                pass
        return None, path

    def _keep_levels(self, path: Path | None, found: ClipLevels) -> ClipLevels:
        if path is not None and not self.cache.unwritable:
            try:
                write_atomically(path, found.to_bytes(), mode=None)  # replacing a damaged one
            except OSError:
                pass  # a read-only or full cache: worked out again next time
        return found

    def _levels_key(self, text: str) -> str | None:
        """What names a text's samples: its chunks' digests and the quiet between them (None
        when a chunk's samples are not the cache's: held in memory, or never read)."""
        named = hashlib.sha256(f"levels-{LEVELS_FORMAT}-{FRAME}".encode())
        for chunk, quiet in split_speech(text):
            digest = None if chunk in self._held else self.cache.digests.get(self._entry(chunk))
            if digest is None:
                return None
            named.update(digest + quiet.to_bytes(8, "little"))
        return named.hexdigest()

    def lengths(self, texts: Iterable[str]) -> Mapping[str, Samples]:
        texts = list(texts)
        self.prefetch(chunk for text in texts for chunk, _ in split_speech(text))
        found = {}
        for text in texts:
            parts = split_speech(text)
            if not parts:
                raise EngineError(f"nothing to say in {text!r}")
            found[text] = sum(self._length(chunk) + quiet for chunk, quiet in parts)
        return found

    def estimated_lengths(self, texts: Iterable[str]) -> Mapping[str, Samples]:
        """Each text's spoken length without speaking anything: a clip the cache holds by its
        length, a new one by its letters at the pace of those it holds (for a picture that must
        not wait for the engine). `self.estimated` counts the chunks guessed."""
        parts = {text: split_speech(text) for text in texts}
        chunks = {chunk for split in parts.values() for chunk, _ in split}
        known = {chunk: self._lengths[chunk] for chunk in chunks if self._cached(chunk) is None}
        letters = sum(len(chunk) for chunk in known)
        pace = sum(known.values()) / letters if letters else ESTIMATED_PACE
        self.estimated = len(chunks) - len(known)
        return {text: sum(known.get(chunk, round(len(chunk) * pace)) + quiet for chunk, quiet in split)
                for text, split in parts.items()}

    def prefetch(self, chunks: Iterable[str]) -> None:
        """Speak every chunk missing from the cache in one batch, when the engine can."""
        batch = self.engine.synthesize_many
        wanted = [chunk for chunk in dict.fromkeys(chunks) if chunk not in self._lengths]
        starting = None
        if any(not self._entry(chunk).exists() for chunk in wanted):
            # something to speak: the engine starts (a second, for a neural voice) while the
            # cache is read (each clip checked against its checksum)
            starting = threading.Thread(target=self._start_engine, name="guidetrack-engine-start", daemon=True)
            starting.start()
        missing: dict[str, Path] = {}
        try:
            for chunk in wanted:
                path = self._cached(chunk)
                if path is not None:
                    missing[chunk] = path
        finally:
            if starting is not None:
                starting.join()
        if not missing:
            return
        self.progress.stage(f"speaking {len(missing)} new clip{'s' if len(missing) > 1 else ''}", len(missing))
        with temporary_folder("speech") as folder:
            todo = [(chunk, Path(folder) / f"{index}.wav") for index, chunk in enumerate(missing)]
            misses = self.cache.misses  # before this batch: progress counts the new clips

            def spoken(index: int) -> None:
                """A clip is written: checked and kept while the engine speaks the others."""
                chunk, raw = todo[index]
                self._keep(chunk, missing[chunk], self._check(chunk, raw))
                self.cache.misses += 1
                self.progress.advance(self.cache.misses - misses)

            batch([(pronounce(chunk, self.voice.lexicon, self.voice.engine), raw) for chunk, raw in todo], self.voice,
                  spoken)

    def _start_engine(self) -> None:
        try:
            self.engine.ensure_started()
        except Exception:  # noqa: BLE001 - speaking starts it again, and reports what went wrong
            pass

    def _cached(self, chunk: str) -> Path | None:
        """Learn a chunk's length from the cache, if it holds the chunk (a hit); else where the
        cache would keep it (None when the length is known already)."""
        if chunk in self._lengths:
            return None
        path = self._entry(chunk)
        clip = self.cache.get(path)
        if clip is None:
            return path
        self.cache.hits += 1
        self._lengths[chunk] = len(clip)
        return None

    def _length(self, chunk: str) -> Samples:
        if chunk not in self._lengths:
            self._fetch(chunk)
        return self._lengths[chunk]

    def _fetch(self, text: str) -> np.ndarray:
        if text in self._held:
            return self._held[text]
        path = self._entry(text)
        clip = self.cache.get(path)
        if clip is not None:
            if text not in self._lengths:
                self.cache.hits += 1
                self._lengths[text] = len(clip)
            elif len(clip) != self._lengths[text]:  # replaced since it was timed (it was damaged): keep the timing
                clip = self._held[text] = _to_length(clip, self._lengths[text])
            return clip
        self.cache.misses += 1
        with temporary_folder("speech") as folder:
            raw = Path(folder) / "utterance.wav"
            self.engine.synthesize(pronounce(text, self.voice.lexicon, self.voice.engine), self.voice, raw)
            clip = self._check(text, raw)
        return self._keep(text, path, clip)

    def _keep(self, chunk: str, path: Path, clip: np.ndarray) -> np.ndarray:
        """Store a new chunk in the cache (or use the one another process stored first); hold it
        in memory only if the cache cannot keep it."""
        stored = self.cache.put(path, clip)
        if stored is None:
            self._held[chunk] = stored = clip
        if chunk in self._lengths and len(stored) != self._lengths[chunk]:  # timed already: keep the timing
            stored = _to_length(stored, self._lengths[chunk])
            self._held[chunk] = stored
        self._lengths.setdefault(chunk, len(stored))
        return stored

    def _entry(self, chunk: str) -> Path:
        spoken = pronounce(chunk, self.voice.lexicon, self.voice.engine)
        return self.cache.path(chunk, ClipCache.key(spoken, self.engine, self.voice))

    def _check(self, text: str, raw: Path) -> np.ndarray:
        """The engine's output for `text`, checked and processed."""
        if not raw.exists() or raw.stat().st_size <= 44:
            raise EngineError(f"{self.engine.name} wrote no audio for {text!r}")
        try:
            audio, rate = read_wav(raw)
        except (wave.Error, EOFError) as err:
            raise EngineError(f"{self.engine.name} wrote an unreadable file for {text!r}: {err}") from None
        if not audio.size or np.abs(audio).max() < db_to_gain(SILENCE_DB):
            raise EngineError(f"{self.engine.name} produced silence for {text!r}; check the voice "
                              f"'{self.voice.voice}' and that espeak-ng works (espeak-ng 'hello')")
        # exactly what the cache will hand back, so cold and warm renders are identical
        return _from_int16(_to_int16(process(audio, rate)))
