"""Audio files a script names (background, intro, outro), decoded without holding them in memory.

ffmpeg decodes the file once, to 16-bit PCM at the mix's rate and channels, into an unnamed
temporary file (it has no name from the start, so nothing is left behind however the process
ends), and the samples are read from it a block at a time. A three-hour FLAC costs
disk while it is in use, not memory.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache

import numpy as np

from .errors import GuidetrackError, InvalidInput
from .ffmpeg import WRITE_FAILURES, decode_into, ffmpeg_path
from .units import CHANNELS, SAMPLE_RATE, Samples

MAX_HOURS = 12  # an audio file longer than this is refused: a bed loops, so none needs to be longer
READ = SAMPLE_RATE * 60  # frames read at a time when scanning the whole file
FRAME = 2 * CHANNELS  # bytes per decoded frame


class Decoded:
    """An audio file as float32 (n, CHANNELS) at SAMPLE_RATE, read by slices: `decoded[a:b]`."""

    def __init__(self, path: str):
        self.path = path
        store = tempfile.TemporaryFile(prefix="guidetrack-decoded-")  # unnamed: nothing to clean
        command = [ffmpeg_path(), "-nostdin", "-v", "error", "-i", path, "-map", "0:a:0", "-t", str(MAX_HOURS * 3600),
                   "-f", "s16le", "-ac", str(CHANNELS), "-ar", str(SAMPLE_RATE), "pipe:1"]
        try:
            code, said = decode_into(command, store)
        except OSError as err:
            store.close()
            raise GuidetrackError(f"cannot run ffmpeg: {err}") from None
        except GuidetrackError:
            store.close()
            raise
        size = store.seek(0, 2)
        if code:
            store.close()
            unwritten = [line for line in said if any(f in line for f in WRITE_FAILURES)]
            reason = (unwritten or said)[-1].removeprefix(f"{path}: ")[:200] if said else f"exit status {code}"
            if "No space left" in reason:
                raise GuidetrackError(f"{path}: no space left in {tempfile.gettempdir()} to decode the audio file "
                                      f"(about {SAMPLE_RATE * FRAME * 60 // 1_000_000} MB a minute); free some, "
                                      "or set TMPDIR to a roomier folder")
            raise InvalidInput(f"{path}: ffmpeg cannot decode this audio file ({reason}); "
                               "use an mp3, wav, ogg or flac file")
        self.length: Samples = size // FRAME
        if self.length < SAMPLE_RATE // 10:
            store.close()
            raise InvalidInput(f"{path}: the audio file is shorter than 0.1 s")
        if self.length >= MAX_HOURS * 3600 * SAMPLE_RATE:
            store.close()
            raise InvalidInput(f"{path}: the audio file is {MAX_HOURS} hours long or longer; "
                               "a background loops, so a shorter one does the same")
        self._store = store
        power = sum(float(np.square(self[start: start + READ], dtype=np.float64).sum())
                    for start in range(0, self.length, READ))
        self.rms = float(np.sqrt(power / (self.length * CHANNELS)))
        if self.rms < 1e-5:
            raise InvalidInput(f"{path}: the audio file is silent")

    def __len__(self) -> Samples:
        return self.length

    def __getitem__(self, where: slice) -> np.ndarray:
        if not isinstance(where, slice) or where.step not in (None, 1):
            raise TypeError("a decoded file is read by contiguous slices")
        start, stop, _ = where.indices(self.length)
        data = os.pread(self._store.fileno(), max(stop - start, 0) * FRAME, start * FRAME)
        return np.frombuffer(data, "<i2").reshape(-1, CHANNELS).astype(np.float32) / 32768.0


@lru_cache(maxsize=4)
def decoded(path: str) -> Decoded:
    """The file decoded, once per process for the few most recently used."""
    return Decoded(path)
