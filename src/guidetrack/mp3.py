"""MP3 on every core: the mix cut into frame-aligned chunks, each encoded by its own LAME, the
frames joined into one gapless file.

An MP3 frame holds 1152 samples, and LAME starts its stream 576 samples early (its encoder
delay). So in one continuous encode, frame k carries input samples from 1152 k - 576 on, and a
chunk whose input starts at a multiple of 1152 makes frames that line up with those of the
continuous encode, shifted by a whole number of frames. Each chunk is encoded with a little of
the audio before it (its first frames, which warm the encoder up, are dropped)
and after it (so its last kept frames are made knowing what follows, as in one encode), and
without the bit reservoir, so that no frame borrows bits from a frame of another chunk. A
decoder reading the joined frames meets, at each seam, two frames made from the same audio:
the MDCT's overlap adds up as it does anywhere else (tests/test_mp3.py measures the seams).

The joined file gets one Xing/LAME "Info" header, written as LAME writes it: the frame
and byte counts, the seek table, the encoder delay and padding (which make a player play exactly
the samples the mix had) and both CRCs.

The chunks are fixed in length, whatever the number of cores, so the bytes are the same on any
machine; how many encode at once only changes how soon they are done.

So a chunk's frames depend only on its input and the encoder's settings: each chunk is named by
the sha256 of both (`chunk_key`), and an encode given the file it replaces (`Earlier`, found by
its `Layout`) takes from it, unchanged, the frames of every chunk whose input did not change.
"""

from __future__ import annotations

import hashlib
import math
import threading
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import lru_cache
from typing import BinaryIO

import numpy as np

FRAME = 1152  # samples per MPEG-1 Layer III frame
ENCODER_DELAY = 576  # LAME's, in samples (the decoder's own 529 are part of how players read the header)
CHUNK_FRAMES = 2296  # about 60 s at 44.1 kHz: each chunk costs a LAME set-up (an ffmpeg start, 70 ms, without lame.py), a few frames of overlap, 21 MB held
JOIN_FORMAT = 1  # bump when the join changes what it writes (a reused chunk must be as a fresh one)
PRE_FRAMES = 4  # frames encoded before a chunk's own and dropped: the encoder settles
POST = 2 * FRAME  # samples encoded after a chunk's own, so its last frames know what comes next
BITRATES = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)  # kbit/s, MPEG-1 Layer III
RATES = (44_100, 48_000, 32_000)
MAX_FRAME = 144 * 320_000 // 32_000 + 1  # the longest frame: 320 kbit/s at 32 kHz, padded
# a decoder reading the audio frames without the Info frame (which tells it to skip these) gives
# first LAME's delay, then the decoder's own 529 samples: the track starts this far in
DECODER_START = ENCODER_DELAY + 529
XING_AT = {1: 21, 2: 36}  # where the Info tag starts in an MPEG-1 frame: after its header and side info


@dataclass(frozen=True)
class Chunk:
    """A part of the track: the frames [first, end) of the joined file, made from input samples
    [start, stop); the chunk's first `skip` frames are dropped."""

    first: int
    end: int
    start: int
    stop: int
    skip: int


def chunks(samples: int, chunk_frames: int = CHUNK_FRAMES) -> list[Chunk]:
    """How a track of `samples` is cut: a chunk every `chunk_frames` frames of the joined file.

    Frame k of the joined file carries the input from sample 1152 k - 576 on. A chunk encoded from
    sample 1152 (first - PRE_FRAMES) makes that frame as its own frame PRE_FRAMES + (k - first):
    its first PRE_FRAMES frames are dropped. The last chunk keeps all it makes, LAME's padding too."""
    needed = math.ceil((ENCODER_DELAY + samples) / FRAME)  # frames with input in them
    found = []
    for first in range(0, max(needed, 1), chunk_frames):
        skip = min(PRE_FRAMES, first)
        end = first + chunk_frames
        last = end >= needed
        stop = samples if last else min(end * FRAME - ENCODER_DELAY + POST, samples)
        found.append(Chunk(first, -1 if last else end, (first - skip) * FRAME, stop, skip))
    return found


def frame_length(header: bytes) -> int:
    """The length in bytes of the MPEG-1 Layer III frame this 4-byte header starts."""
    if len(header) < 4 or header[0] != 0xFF or (header[1] & 0xFE) != 0xFA:
        raise ValueError("not an MPEG-1 Layer III frame")
    bitrate = BITRATES[header[2] >> 4] * 1000
    rate = RATES[(header[2] >> 2) & 3]
    if not bitrate:
        raise ValueError("a free-format frame")
    return 144 * bitrate // rate + ((header[2] >> 1) & 1)


def frames_of(data: bytes) -> list[bytes]:
    """The frames of an MP3 stream without tags, in order (its Info frame first, if it has one)."""
    found, at = [], 0
    while at + 4 <= len(data):
        length = frame_length(data[at: at + 4])
        found.append(data[at: at + length])
        at += length
    if at != len(data):
        raise ValueError("the stream ends inside a frame")
    return found


def _tag_at(frame: bytes | bytearray) -> int:
    """Where an Info tag starts in this MPEG-1 frame: after the side information of its channels."""
    return XING_AT[1 if frame[3] >> 6 == 3 else 2]


def is_info(frame: bytes) -> bool:
    at = _tag_at(frame)
    return frame[at: at + 4] in (b"Info", b"Xing")


def crc16(data: bytes, crc: int = 0) -> int:
    """CRC-16/ARC, as LAME computes its tag's and the music's."""
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


CRC_LANES = 4096  # a chunk's CRC is worked out in this many pieces at once, then combined


def _crc_lanes(data: np.ndarray) -> int:
    """CRC-16/ARC of `data` at numpy's speed (an 8-hour MP3 is 460 MB, which a byte-at-a-time loop
    in Python would take minutes over). The CRC has no initial value or final xor, so it is
    linear: the CRC of A then B is the CRC of A carried through len(B) zero bytes, xor the CRC of
    B; and zero bytes in front change nothing. So `data` is cut into equal lanes (zeros in front
    of the first), every lane's CRC is worked out at once, a byte a step, and they are combined."""
    if len(data) < 4 * CRC_LANES:
        return crc16(data.tobytes())
    lane = -(-len(data) // CRC_LANES)
    padded = np.zeros(lane * CRC_LANES, np.uint8)
    padded[len(padded) - len(data):] = data
    columns = np.ascontiguousarray(padded.reshape(CRC_LANES, lane).T)  # step j: byte j of every lane
    table = np.array(_CRC_TABLE, np.uint32)
    crcs = np.zeros(CRC_LANES, np.uint32)
    for column in columns:
        crcs = (crcs >> 8) ^ table[(crcs ^ column) & 0xFF]
    crc = 0
    low, high = _carry_tables(lane)
    for value in crcs.tolist():
        crc = int(low[crc & 0xFF] ^ high[crc >> 8]) ^ value
    return crc


def _carry(crc: int, length: int) -> int:
    """`crc` carried through `length` zero bytes."""
    low, high = _carry_tables(length)
    return int(low[crc & 0xFF] ^ high[crc >> 8])


@lru_cache(maxsize=16)  # chunks are nearly all the same length: the same tables again and again
def _carry_tables(length: int) -> tuple[np.ndarray, np.ndarray]:
    """What carrying a CRC through `length` zero bytes does to its low and to its high byte: the
    step for one zero byte as a 16x16 matrix over GF(2), raised to the `length`-th power."""
    step = np.zeros((16, 16), np.int64)
    for bit in range(16):
        out = (1 << bit) >> 8 ^ _CRC_TABLE[(1 << bit) & 0xFF]
        step[:, bit] = [(out >> k) & 1 for k in range(16)]
    power, result = step, np.eye(16, dtype=np.int64)
    while length:
        if length & 1:
            result = (power @ result) % 2
        power = (power @ power) % 2
        length >>= 1
    weights = 1 << np.arange(16)
    values = np.arange(256)
    low = ((result @ ((values[None, :] >> np.arange(16)[:, None]) & 1)) % 2).T @ weights
    high = ((result @ (((values[None, :] << 8) >> np.arange(16)[:, None]) & 1)) % 2).T @ weights
    low.flags.writeable = high.flags.writeable = False  # kept: shared by every call for this length
    return low, high


class _Joined:
    """The joined file, written as the chunks come: room for the Info frame, then each chunk's
    own frames; the Info frame is written last, when the whole is known."""

    def __init__(self, out: BinaryIO, listen: Callable[[bytes], None] | None = None):
        self.out = out
        self.listen = listen  # given the audio frames too, as they are written
        self.template = b""
        self.sizes = array("I")  # every audio frame's length, for the seek table
        self.bitrates: set[int] = set()  # the frames' bitrate indexes: more than one is a VBR file
        self.crc = 0  # of the audio frames written so far
        self.placed: list[Placed] = []
        self.info = b""  # the Info frame, once written

    def add(self, chunk: Chunk, data: bytes, key: str = "") -> None:
        """A chunk as its encoder made it: its Info frame, the frames dropped, its own."""
        frames = frames_of(data)
        if not frames or not is_info(frames[0]):
            raise ValueError("a chunk's encode has no Info frame")
        own = frames[1 + chunk.skip:]
        if chunk.end != -1:
            own = own[: chunk.end - chunk.first]
        self._write(chunk, own, frames[0], key)

    def add_own(self, chunk: Chunk, own: list[bytes], template: bytes, key: str) -> None:
        """A chunk's own frames, as an earlier encode of the same input wrote them (`template`:
        that file's Info frame, which a first chunk's own encode would have made)."""
        self._write(chunk, own, template, key)

    def _write(self, chunk: Chunk, own: list[bytes], template: bytes, key: str) -> None:
        if chunk.end != -1 and len(own) != chunk.end - chunk.first:
            raise ValueError(f"a chunk made {len(own)} frames, not {chunk.end - chunk.first}")
        if not self.template:
            self.template = template
            self.out.write(bytes(len(self.template)))
        self.sizes.extend(len(frame) for frame in own)
        self.bitrates.update(frame[2] >> 4 for frame in own)
        data = b"".join(own)
        self.crc = _carry(self.crc, len(data)) ^ _crc_lanes(np.frombuffer(data, np.uint8))
        self.placed.append(Placed(key, self.out.tell(), len(data), hashlib.sha256(data).hexdigest()))
        self.out.write(data)
        if self.listen is not None:
            self.listen(data)

    def finish(self, samples: int) -> None:
        """The Info frame: the first chunk's, with the counts, the seek table, the padding and the
        CRCs of the whole."""
        head = bytearray(self.template)
        tag = _tag_at(head)
        lame = tag + 120  # the LAME extension, after the counts, the seek table and the quality
        if head[tag: tag + 4] not in (b"Info", b"Xing") or int.from_bytes(head[tag + 4: tag + 8], "big") != 0xF:
            raise ValueError("the first chunk has no Info tag with counts, a seek table and a quality")
        delay = int.from_bytes(head[lame + 21: lame + 24], "big") >> 12
        if delay != ENCODER_DELAY:
            raise ValueError(f"the encoder's delay is {delay} samples, not {ENCODER_DELAY}: the chunks would not line up")
        head[tag: tag + 4] = b"Xing" if len(self.bitrates) > 1 else b"Info"  # as ffmpeg and LAME name them
        frames = len(self.sizes)
        total = len(head) + sum(self.sizes)
        stored = total & 0xFFFFFFFF  # as ffmpeg writes a file of 4 GiB or more
        head[tag + 8: tag + 12] = frames.to_bytes(4, "big")
        head[tag + 12: tag + 16] = stored.to_bytes(4, "big")
        offsets = len(head) + np.concatenate([[0], np.cumsum(np.frombuffer(self.sizes, np.uint32), dtype=np.int64)])
        toc = [0] + [min(255, int(256 * int(offsets[frames * i // 100]) // total)) for i in range(1, 100)]
        head[tag + 16: tag + 116] = bytes(toc)
        padding = frames * FRAME - ENCODER_DELAY - samples
        if not 0 <= padding < 4096:
            raise ValueError(f"the joined frames do not hold the track: padding {padding}")
        head[lame + 21: lame + 24] = (delay << 12 | padding).to_bytes(3, "big")
        head[lame + 28: lame + 32] = stored.to_bytes(4, "big")
        head[lame + 32: lame + 34] = self.crc.to_bytes(2, "big")
        head[lame + 34: lame + 36] = crc16(bytes(head[: lame + 34])).to_bytes(2, "big")
        self.out.seek(0)
        self.out.write(bytes(head))
        self.out.seek(total)
        self.info = bytes(head)


@dataclass(frozen=True)
class Placed:
    """One chunk's own frames in a joined file: `length` bytes from `at` (the Info frame is at
    0), their sha256 `digest`, made from the input named `key` (see `chunk_key`)."""

    key: str
    at: int
    length: int
    digest: str


@dataclass(frozen=True)
class Layout:
    """What a joined file holds: its Info frame (its length and sha256) and each chunk's frames."""

    info: int
    info_digest: str
    chunks: tuple[Placed, ...]


def chunk_key(settings: bytes, chunk: Chunk, audio: np.ndarray) -> str:
    """What names a chunk's frames: the sha256 of the encoder's `settings`, which of its frames
    are kept, and its input samples."""
    kept = "all" if chunk.end == -1 else str(chunk.end - chunk.first)
    digest = hashlib.sha256(settings + f"|{chunk.skip}|{kept}|{audio.shape}|{audio.dtype.str}|".encode())
    digest.update(np.ascontiguousarray(audio).data.cast("B"))
    return digest.hexdigest()


class Earlier:
    """The file an encode replaces, read for the frames it can reuse: `source` open on it,
    whose Info frame starts at `start` (after its tags), as `layout` says it was written. Every
    piece read is checked against its sha256, so a file changed since gives nothing."""

    def __init__(self, source: BinaryIO, start: int, layout: Layout):
        self.source = source
        self.start = start
        self.layout = layout
        self.by_key = {placed.key: placed for placed in layout.chunks}
        self.reused = 0  # chunks taken from it
        self.lock = threading.Lock()  # read from the encoders' threads

    def _read(self, at: int, length: int, digest: str) -> bytes | None:
        try:
            with self.lock:
                self.source.seek(self.start + at)
                data = self.source.read(length)
        except OSError:
            return None
        return data if len(data) == length and hashlib.sha256(data).hexdigest() == digest else None

    def info(self) -> bytes | None:
        data = self._read(0, self.layout.info, self.layout.info_digest)
        try:
            return data if data is not None and len(frames_of(data)) == 1 and is_info(data) else None
        except (ValueError, IndexError):  # not a frame, whatever its digest says
            return None

    def frames(self, key: str) -> list[bytes] | None:
        placed = self.by_key.get(key)
        data = None if placed is None else self._read(placed.at, placed.length, placed.digest)
        try:
            return (frames_of(data) or None) if data is not None else None
        except ValueError:  # not frames, whatever its digest says
            return None


def encode_parallel(pcm: Iterable[np.ndarray], samples: int, encode_chunk: Callable[[np.ndarray], bytes],
                    workers: int, out: BinaryIO, chunk_frames: int = CHUNK_FRAMES,
                    listen: Callable[[bytes], None] | None = None, settings: bytes | None = None,
                    earlier: Earlier | None = None) -> Layout:
    """Write to `out` (seekable: the Info frame is written last) the joined MP3 of the `samples` the blocks
    of `pcm` hold, each chunk given to `encode_chunk` (which returns its MP3 bytes) on one of
    `workers` threads. A few chunks at most are held: the mix waits for the encoders, and each
    chunk is written as soon as those before it are, and given to `listen` (the audio frames in
    order, without the Info frame: see `DECODER_START`). Given the encoder's `settings` (every
    one that changes its frames), each chunk is named by its `chunk_key`, and a chunk `earlier`
    holds under that name is taken from it rather than encoded."""
    plan = chunks(samples, chunk_frames)
    joined = _Joined(out, listen)
    workers = max(workers, 1)
    pending: deque[tuple[Chunk, Future[_Made]]] = deque()  # named, then encoded or found in `earlier`

    def make(index: int, chunk: Chunk, audio: np.ndarray) -> _Made:
        """On an encoder's thread: the chunk's name (hashing 21 MB is not left to the mix's
        thread), then its frames as `earlier` holds them, or else as they encode."""
        key = chunk_key(settings, chunk, audio) if settings is not None else ""
        if earlier is not None and key:
            own = earlier.frames(key)
            # the joined file's Info frame is the first chunk's: taken with it, or it is encoded
            template = earlier.info() if own is not None and index == 0 else b""
            if own is not None and template is not None:
                return _Made(key, own=own, template=template)
        return _Made(key, encoded=encode_chunk(audio))

    def write_oldest() -> None:
        chunk, future = pending.popleft()
        made = future.result()
        if made.own is None:
            joined.add(chunk, made.encoded or b"", made.key)
        else:
            joined.add_own(chunk, made.own, made.template, made.key)
            if earlier is not None:
                earlier.reused += 1

    def make_room() -> None:
        """Write what is done, in order, until fewer than one chunk a core is under way and a
        few are held at most (the mix waits for the encoders)."""
        while True:
            while pending and pending[0][1].done():
                write_oldest()
            unfinished = [future for _, future in pending if not future.done()]
            if len(unfinished) < workers and len(pending) < 2 * workers:
                return
            wait(unfinished, return_when=FIRST_COMPLETED)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="guidetrack-mp3") as pool:
        for index, (chunk, audio) in enumerate(zip(plan, _cut(pcm, plan), strict=True)):
            make_room()
            pending.append((chunk, pool.submit(make, index, chunk, audio)))
        while pending:
            write_oldest()
    joined.finish(samples)
    return Layout(len(joined.info), hashlib.sha256(joined.info).hexdigest(), tuple(joined.placed))


@dataclass(frozen=True)
class _Made:
    """A chunk's frames: `encoded` (its encoder's whole stream), or else `own`, taken from an
    earlier file, with that file's Info frame as `template` for a first chunk."""

    key: str
    encoded: bytes | None = None
    own: list[bytes] | None = None
    template: bytes = b""


def _cut(pcm: Iterable[np.ndarray], plan: list[Chunk]) -> Iterator[np.ndarray]:
    """The input of each chunk, in order, from a stream of blocks (chunks overlap a little)."""
    blocks = iter(pcm)
    held: np.ndarray | None = None  # what is read and not yet all handed out
    held_from = 0  # the sample `held` starts at
    for index, chunk in enumerate(plan):
        parts = [] if held is None else [held]
        have = held_from + (0 if held is None else len(held))
        while have < chunk.stop:
            block = next(blocks, None)
            if block is None:
                raise ValueError(f"the mix ended at sample {have}, before {chunk.stop}")
            parts.append(block)
            have += len(block)
        data = np.concatenate(parts) if len(parts) > 1 else parts[0]
        yield data[chunk.start - held_from: chunk.stop - held_from]
        following = plan[index + 1].start if index + 1 < len(plan) else have
        held, held_from = data[following - held_from:], following
    if held_from != plan[-1].stop or next(blocks, None) is not None:  # read to its end: its progress is told
        raise ValueError(f"the mix ran past its {plan[-1].stop} samples")
