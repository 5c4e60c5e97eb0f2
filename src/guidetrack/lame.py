"""LAME in this process: the MP3 chunks (see `mp3`) encoded by the libmp3lame that ffmpeg itself
links, called through ctypes, which lets go of the GIL during each call, so one thread a core
encodes at full speed.

It is the encoder ffmpeg's `libmp3lame` runs, set up as ffmpeg sets it up and fed as ffmpeg
feeds it (planar floats scaled by 32768), so every audio frame is the same, bit for bit
(tests/test_mp3.py compares them); what it saves is an ffmpeg start per chunk (80 ms of CPU
each, for loading some 200 libraries) and the copy of every sample through a pipe: about 2 s
of CPU in a 10-minute render. Where the library cannot be loaded (an ffmpeg built without a
shared libmp3lame), `encoder` is None and the chunks are encoded by ffmpeg processes.
"""

from __future__ import annotations

import ctypes
import hashlib
import threading
from functools import lru_cache

import numpy as np

JOINT_STEREO, MONO = 1, 3  # LAME's MPEG_mode
VBR_OFF, VBR_DEFAULT = 0, 4  # LAME's vbr_mode: vbr_off, vbr_default (vbr_mtrh), as ffmpeg's -q:a sets it
FED = 44_100 * 2  # samples a channel handed to LAME at a time
FLOAT_SCALE = np.float32(32768.0)  # ffmpeg scales its float samples so before lame_encode_buffer_float


class Lame:
    """libmp3lame's functions this module calls, with their C types."""

    def __init__(self, library: ctypes.CDLL):
        handle, number, pointer = ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p
        self.library = library
        library.lame_init.restype = handle
        library.lame_init.argtypes = []
        for name in ("lame_set_num_channels", "lame_set_in_samplerate", "lame_set_out_samplerate",
                     "lame_set_mode", "lame_set_brate", "lame_set_VBR", "lame_set_disable_reservoir",
                     "lame_set_bWriteVbrTag"):
            getattr(library, name).argtypes = [handle, number]
            getattr(library, name).restype = number
        library.lame_set_VBR_quality.argtypes = [handle, ctypes.c_float]
        library.lame_set_VBR_quality.restype = number
        library.lame_init_params.argtypes = [handle]
        library.lame_init_params.restype = number
        library.lame_encode_buffer_float.argtypes = [handle, pointer, pointer, number, pointer, number]
        library.lame_encode_buffer_float.restype = number
        library.lame_encode_flush.argtypes = [handle, pointer, number]
        library.lame_encode_flush.restype = number
        library.lame_get_lametag_frame.argtypes = [handle, pointer, ctypes.c_size_t]
        library.lame_get_lametag_frame.restype = ctypes.c_size_t
        library.lame_close.argtypes = [handle]
        library.lame_close.restype = number
        library.get_lame_version.argtypes = []
        library.get_lame_version.restype = ctypes.c_char_p
        self.version = (library.get_lame_version() or b"").decode("ascii", "replace")
        self.lock = threading.Lock()  # lame_init_params fills tables shared by every encoder, once
        self.fingerprints: dict[tuple[int, int, int | None, float | None], str] = {}

    def encode(self, audio: np.ndarray, channels: int, rate: int, bitrate: int | None,
               quality: float | None) -> bytes:
        """`audio` (n, 2) float32 as an MP3 stream without the bit reservoir: the Info frame (LAME's
        own, with its counts), then the audio frames, as ffmpeg writes a chunk. `bitrate` in
        kbit/s for a constant bitrate, or `quality` (0 best .. 9) for VBR. In mono, each sample
        is the mean of the two channels (see `encode.format_chain`)."""
        lib = self.library
        gfp = lib.lame_init()
        if not gfp:
            raise MemoryError("lame_init failed")
        try:
            for setter, value in (("lame_set_num_channels", channels), ("lame_set_in_samplerate", rate),
                                  ("lame_set_out_samplerate", rate),
                                  ("lame_set_mode", MONO if channels == 1 else JOINT_STEREO),
                                  ("lame_set_disable_reservoir", 1), ("lame_set_bWriteVbrTag", 1)):
                getattr(lib, setter)(gfp, value)
            if quality is not None:
                lib.lame_set_VBR(gfp, VBR_DEFAULT)
                lib.lame_set_VBR_quality(gfp, float(quality))
            else:
                lib.lame_set_VBR(gfp, VBR_OFF)
                lib.lame_set_brate(gfp, int(bitrate or 128))
            with self.lock:
                if lib.lame_init_params(gfp) < 0:
                    raise ValueError("LAME does not take these settings")
            out = bytearray()
            room = np.empty(int(1.25 * FED) + 7200, np.uint8)  # LAME's own bound for FED samples
            for at in range(0, len(audio), FED):
                part = audio[at: at + FED]
                planar = (part.mean(axis=1, dtype=np.float32)[None, :] if channels == 1 else part.T) * FLOAT_SCALE
                planar = np.ascontiguousarray(planar, np.float32)
                right = planar[1] if channels == 2 else planar[0]
                made = lib.lame_encode_buffer_float(gfp, planar[0].ctypes.data, right.ctypes.data, planar.shape[1],
                                                    room.ctypes.data, len(room))
                if made < 0:
                    raise ValueError(f"LAME failed to encode ({made})")
                out += room[:made].tobytes()
            made = lib.lame_encode_flush(gfp, room.ctypes.data, len(room))
            if made < 0:
                raise ValueError(f"LAME failed to finish ({made})")
            out += room[:made].tobytes()
            tag = np.empty(4096, np.uint8)
            size = lib.lame_get_lametag_frame(gfp, tag.ctypes.data, len(tag))
            if not 0 < size <= len(tag) or out[:2] != b"\xff\xfb" or len(out) < size:
                raise ValueError("LAME wrote no Info frame")
            out[:size] = tag[:size].tobytes()  # the frame LAME kept room for, filled in
            return bytes(out)
        finally:
            lib.lame_close(gfp)

    def fingerprint(self, channels: int, rate: int, bitrate: int | None, quality: float | None) -> str:
        """The sha256 of a short fixed sound encoded as `encode` encodes at these settings: two
        builds of LAME, or two ways of setting it up or feeding it, that make other frames give
        another fingerprint. A few milliseconds, once a process for each setting."""
        settings = (channels, rate, bitrate, quality)
        if settings in self.fingerprints:
            return self.fingerprints[settings]
        t = np.arange(6 * 1152, dtype=np.float32) / np.float32(rate)
        sound = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 1330 * t * (1 + t))], axis=1)
        found = hashlib.sha256(self.encode(sound.astype(np.float32), channels, rate, bitrate, quality)).hexdigest()
        self.fingerprints[settings] = found
        return found


@lru_cache(maxsize=1)
def encoder() -> Lame | None:
    """The libmp3lame in this process (the one ffmpeg links), or None if it cannot be loaded."""
    for name in ("libmp3lame.so.0", "libmp3lame.so", "libmp3lame.0.dylib", "libmp3lame.dylib"):
        try:
            return Lame(ctypes.CDLL(name))
        except (OSError, AttributeError):
            continue
    return None
