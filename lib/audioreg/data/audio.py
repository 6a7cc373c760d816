"""Decoding audio files: probe, streamed decode to mono at the target rate, content hash.

Everything here works on explicit paths; nothing reads environment variables.
Errors name the file (and the CSV row) they are about.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np


log = logging.getLogger(__name__)

#: The one sample rate: every file is decoded and resampled to it, and every feature is computed at it.
SR = 22050

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".m4a", ".wma")


def walk_audio(audio_dir: str | os.PathLike) -> list[tuple[str, str]]:
    """``(path, stem)`` of every audio file below ``audio_dir``, recursive, in sorted order.

    ``path`` is as found below ``audio_dir`` (as pathlib writes it: no ``./``), ``stem`` the
    file name without its extension, NFC (names on a Mac disk are NFD). Extensions are
    matched without regard to case (``.MP3``). macOS's ``._<name>`` companions (resource
    forks copied to non-Mac disks) are not audio and are left out.
    """
    import unicodedata

    top = str(Path(audio_dir))
    found = []
    if os.path.isdir(top):
        for dirpath, dirs, names in os.walk(top):
            dirs.sort()
            if top == ".":
                dirpath = dirpath.removeprefix("./")
            prefix = "" if dirpath == "." else dirpath + os.sep
            for name in sorted(names):
                stem, ext = os.path.splitext(name)
                if ext.lower() in AUDIO_EXTENSIONS and stem and not name.startswith("._"):
                    found.append((prefix + name, stem if stem.isascii() else unicodedata.normalize("NFC", stem)))
    return found


class AudioDecodeError(RuntimeError):
    """An audio file could not be decoded; the message names the file."""


def _existing_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or an :class:`AudioDecodeError` if it is missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: empty file (0 bytes)")
    return path


def _open_binary(path: str | os.PathLike):
    """``(path, open binary file)`` of an existing, non-empty file, or an :class:`AudioDecodeError`
    naming why it cannot be opened (permissions...)."""
    path = _existing_file(path)
    try:
        return path, open(path, "rb")
    except OSError as exc:
        raise AudioDecodeError(f"{path}: cannot open the file ({exc.strerror or _short(exc)})") from exc


def probe_audio(path: str | os.PathLike) -> dict:
    """Duration, sample rate and channel count of an audio file without decoding it.

    Returns
    -------
    dict with ``duration_s``, ``sample_rate``, ``channels``, ``frames``.
    """
    import soundfile as sf

    path = _existing_file(path)
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile cannot read it: try audioread (ffmpeg/gstreamer) if present
        try:
            import audioread

            with audioread.audio_open(str(path)) as f:
                return {
                    "duration_s": float(f.duration),
                    "sample_rate": int(f.samplerate),
                    "channels": int(f.channels),
                    "frames": int(round(f.duration * f.samplerate)),
                }
        except Exception:
            raise AudioDecodeError(f"{path}: not a readable audio file ({_short(exc)})") from exc
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioDecodeError(f"{path}: no audio frames")
    return {
        "duration_s": info.frames / info.samplerate,
        "sample_rate": int(info.samplerate),
        "channels": int(info.channels),
        "frames": int(info.frames),
    }


def load_audio(
    path: str | os.PathLike,
    *,
    sr: int = SR,
    mono: bool = True,
    max_duration: float | None = None,
) -> tuple[np.ndarray, int]:
    """Decode an audio file, mix to mono and resample (soxr) to ``sr``.

    Parameters
    ----------
    path : path of a wav/flac/ogg/opus/mp3/... file (libsndfile; audioread as fallback)
    sr : output sample rate
    mono : average the channels
    max_duration : read at most this many seconds (None: the whole file)

    Returns
    -------
    y : np.ndarray [shape=(n,) if mono else (channels, n)], float32
    sr : int

    Raises
    ------
    AudioDecodeError
        naming the file and what is wrong: missing, empty, cannot be opened
        (permissions), not audio, or truncated (mono: a decoded length short of
        the length an MP3 Xing/Info header or a FLAC header announces, or an Ogg
        stream without its end-of-stream page).

    The file is opened here with Python's ``open`` and handed to libsndfile as a
    file object, so any name Python can hold (undecodable bytes included) can be read.
    """
    import soundfile as sf
    import soxr

    path, fh = _open_binary(path)
    with fh:
        if mono:
            try:
                return _load_mono_streaming(path, fh, sr=sr, max_duration=max_duration), sr
            except _NotSoundfile as exc:
                data, orig_sr = _load_audioread(path, max_duration=max_duration, original=exc.__cause__)
        else:
            try:
                with sf.SoundFile(fh) as f:
                    orig_sr = f.samplerate
                    frames = -1 if max_duration is None else int(max_duration * orig_sr)
                    data = f.read(frames=frames, dtype="float32", always_2d=True)
            except Exception as exc:
                data, orig_sr = _load_audioread(path, max_duration=max_duration, original=exc)
    if data.shape[0] == 0:
        raise AudioDecodeError(f"{path}: no audio frames (the stream is empty, truncated or corrupt)")
    if not np.all(np.isfinite(data)):
        raise AudioDecodeError(f"{path}: decoded samples contain NaN or infinity")
    y = data.mean(axis=1) if mono else data.T
    if orig_sr != sr:
        y = soxr.resample(y.T if not mono else y, orig_sr, sr, quality="HQ")
        y = y if mono else y.T
    return np.ascontiguousarray(y, dtype=np.float32), sr


class _NotSoundfile(Exception):
    """libsndfile cannot open the file (the audioread fallback may)."""


#: Frames decoded per block when streaming (a block of 48 kHz stereo float32 is ~23 MB).
DECODE_BLOCK_S = 60.0


def _load_mono_streaming(path: Path, fh, *, sr: int, max_duration: float | None) -> np.ndarray:
    """Decode block by block, mix each block to mono and resample it with a soxr stream.

    Bit-identical to decoding the whole file, averaging the channels and calling
    ``soxr.resample`` once, but only one block of the (often stereo, 44.1-48 kHz)
    decoded signal is held at a time: the peak is the mono 22,050 Hz output.
    ``fh`` is the open file (binary, seekable); ``path`` names it in errors.

    A stream that ends well before the length its header announces is an error
    (truncated download), as is an Ogg stream without its end-of-stream page (Ogg
    announces no length). MP3 lengths count only from a Xing/Info/VBRI header: without
    one libsndfile estimates the length from the first frame's bitrate, which can be
    far off for variable bitrate files, so a truncated MP3 without one decodes as a
    shorter track. A truncated WAV also decodes as a shorter track (libsndfile
    clamps its length to the data present).
    """
    import soundfile as sf
    import soxr

    try:
        f = sf.SoundFile(fh)
    except Exception as exc:
        raise _NotSoundfile() from exc
    with f:
        orig_sr, fmt, announced = f.samplerate, f.format, f.frames
        total = announced if max_duration is None else min(announced, int(max_duration * orig_sr))
        if total <= 0:
            raise AudioDecodeError(f"{path}: no audio frames (the stream is empty, truncated or corrupt)")
        stream = soxr.ResampleStream(orig_sr, sr, 1, dtype="float32", quality="HQ") if orig_sr != sr else None
        chunks, done = [], 0
        block = max(1, int(DECODE_BLOCK_S * orig_sr))
        try:
            while done < total:
                data = f.read(frames=min(block, total - done), dtype="float32", always_2d=True)
                if data.shape[0] == 0:
                    break
                done += data.shape[0]
                if not np.all(np.isfinite(data)):
                    raise AudioDecodeError(f"{path}: decoded samples contain NaN or infinity")
                y = data.mean(axis=1)
                chunks.append(stream.resample_chunk(y) if stream else y)
        except (AudioDecodeError, TimeoutError):  # a caller's timeout is not a decoding error
            raise
        except Exception as exc:  # a file that opens but breaks while decoding (truncated, corrupt)
            raise AudioDecodeError(f"{path}: decoding failed after {done / orig_sr:.1f} s ({_short(exc)})") from exc
        if stream:
            chunks.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    if done == 0:
        raise AudioDecodeError(f"{path}: no audio frames (the stream is empty, truncated or corrupt)")
    # SF_COUNT_MAX: length unknown (e.g. a FLAC header without the sample count); decoders
    # may stop a few frames short of an announced length (MP3 padding), hence the slack
    known = announced < 2**62 and (fmt != "MP3" or _mpeg_length_tag(fh))
    if known and total - done > max(0.01 * total, 0.1 * orig_sr):
        raise AudioDecodeError(f"{path}: truncated or corrupt: decoded {done / orig_sr:.1f} s of the "
                               f"{total / orig_sr:.1f} s its header announces")
    if fmt == "OGG" and total == announced and _ogg_truncated(fh):
        raise AudioDecodeError(f"{path}: truncated: the Ogg stream ends after {done / orig_sr:.1f} s "
                               "without its end-of-stream page")
    return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)


def _mpeg_length_tag(fh) -> bool:
    """Whether an MP3's first frame is a Xing/Info/VBRI header (an exact length, not an estimate)."""
    fh.seek(0)
    head = fh.read(10)
    start = 0
    if head[:3] == b"ID3" and len(head) == 10:  # skip an ID3v2 tag: 10-byte header, syncsafe size
        start = 10 + (head[6] << 21 | head[7] << 14 | head[8] << 7 | head[9]) + (10 if head[5] & 0x10 else 0)
    fh.seek(start)
    frame = fh.read(64)  # the tag sits 13-36 bytes into the first frame
    return any(tag in frame for tag in (b"Xing", b"Info", b"VBRI"))


#: The largest Ogg page: 27-byte header, 255 lacing values, 255 segments of 255 bytes.
_OGG_MAX_PAGE = 27 + 255 + 255 * 255


def _ogg_truncated(fh) -> bool:
    """Whether an Ogg file's last page is cut short or is not an end-of-stream page."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(max(0, size - 2 * _OGG_MAX_PAGE))
    tail = fh.read()
    base = size - len(tail)
    i = tail.rfind(b"OggS")
    while i >= 0 and (i + 27 > len(tail) or tail[i + 4] != 0):  # a capture pattern must have version 0
        i = tail.rfind(b"OggS", 0, i)
    if i < 0 or i + 27 + tail[i + 26] > len(tail):
        return True  # no complete page header in the tail: cut inside a page
    n_segments = tail[i + 26]
    end = i + 27 + n_segments + sum(tail[i + 27 : i + 27 + n_segments])
    return base + end > size or not tail[i + 5] & 0x04


#: The loudness recorded for digital silence, as a model input: BS.1770's absolute gate, dB LUFS.
SILENT_LUFS = -70.0


def measure_loudness(path: str | os.PathLike) -> float:
    """Integrated loudness (dB LUFS, ITU-R BS.1770) of a file's original channels at its own
    sample rate, decoded block by block (:class:`audioreg.data.loudness.LoudnessMeter`).

    This is what Spotify's ``loudness`` reports, and what the features cannot see: they
    are computed on the mono downmix, which for a stereo file with the same content in
    both channels reads about 3 dB quieter. ``-inf`` for digital silence.

    Raises
    ------
    AudioDecodeError
        naming the file, when it cannot be opened or decoded, or holds no frames.
    """
    import soundfile as sf

    from .loudness import LoudnessMeter

    path, fh = _open_binary(path)
    with fh:
        try:
            f = sf.SoundFile(fh)
        except Exception as exc:
            data, sr = _load_audioread(path, max_duration=None, original=exc)
            meter = LoudnessMeter(sr=sr, channels=data.shape[1])
            meter.update(data.T)
        else:
            with f:
                meter = LoudnessMeter(sr=f.samplerate, channels=f.channels)
                block = int(DECODE_BLOCK_S * f.samplerate)
                try:
                    while len(data := f.read(frames=block, dtype="float64", always_2d=True)):
                        meter.update(data.T)
                except Exception as exc:
                    raise AudioDecodeError(f"{path}: decoding failed after {meter.n_samples} frames ({_short(exc)})") from exc
    if meter.n_samples == 0:
        raise AudioDecodeError(f"{path}: no audio frames (the stream is empty, truncated or corrupt)")
    return meter.integrated()


def _load_audioread(path: Path, *, max_duration: float | None, original: Exception):
    try:
        import audioread

        chunks = []
        with audioread.audio_open(str(path)) as f:
            orig_sr, channels = f.samplerate, f.channels
            limit = None if max_duration is None else int(max_duration * orig_sr) * channels
            got = 0
            for buf in f:
                chunk = np.frombuffer(buf, dtype="<i2").astype(np.float32) / 32768.0
                chunks.append(chunk)
                got += chunk.size
                if limit is not None and got >= limit:
                    break
        data = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        if limit is not None:
            data = data[:limit]
        return data[: data.size - data.size % channels].reshape(-1, channels), orig_sr
    except TimeoutError:  # a caller's timeout (a slow ffmpeg decode) is not an unreadable file
        raise
    except Exception:
        raise AudioDecodeError(f"{path}: not a readable audio file ({_short(original)})") from original


def _short(exc: Exception) -> str:
    """``"<type>: <first line>"``; libsndfile errors as ``"libsndfile: <its message>"``."""
    error_string = getattr(exc, "error_string", None)
    if type(exc).__name__ == "LibsndfileError" and isinstance(error_string, str):
        # its str() embeds the repr of the file object; code 7 (SFE_BAD_FILE) says "File does not
        # exist or is not a regular file", which libsndfile also reports for data it cannot parse
        text = "cannot parse the data" if getattr(exc, "code", None) == 7 else error_string.strip().rstrip(".")
        return f"libsndfile: {text}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def file_sha256(path: str | os.PathLike, *, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


