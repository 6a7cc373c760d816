"""Optional torch path for the STFT-derived features: batches of tracks on a GPU.

:func:`extract_features_batch` returns, for each track, the ``[t, 46]`` float32 matrix of
:func:`audioreg.features.extract_features` (same layout, same settings: Hann window, n_fft
2048, hop 512, centred frames with zero padding, 128 mel bands, 20 MFCC, 12 chroma bins,
6 + 1 contrast bands, tonnetz, zero-crossing rate), within :data:`TOLERANCES`.

What runs where:

========================  ========  ==================================================
step                      where     how
========================  ========  ==================================================
STFT, power               device    frames (``unfold``) x window, ``torch.fft.rfft`` in
                                    ``fft_dtype``, rounded to complex64, power in float32
mel, chroma               device    dense products with librosa's filter banks (float64
                                    accumulation, so TF32 settings never apply)
spectral contrast         device    ``torch.topk`` of the ``q`` largest/smallest bins per band
pitch peaks (tuning)      device    piptrack's peak picking and parabolic interpolation
tuning from the peaks     CPU       each track's peaks are copied back and
                                    :func:`audioreg.features.frames._tuning` pools them
log-mel, MFCC, tonnetz    device    ``top_db`` floors per track, DCT and tonnetz matrices
zero-crossing rate        CPU       :func:`audioreg.features.kernels._zero_crossings`, as
                                    ``extract_features`` computes it (not STFT-derived)
========================  ========  ==================================================

Tracks of different lengths share one zero-padded batch. Frames past a track's end are
masked out of every per-track global quantity (the ``top_db`` maxima of the log-mel and
of the contrast's peaks and valleys, and the pooled pitch peaks of the tuning) and cut
from its output, so a track's features do not depend on the batch it is in.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from audioreg.features import banks
from audioreg.features import frames as cpu  # the one-pass CPU path this one mirrors
from audioreg.features import kernels
from audioreg.device import resolve_device

__all__ = ["KEEP_POWER_BYTES", "MAX_CHUNK_FRAMES", "TOLERANCES", "TOLERANCES_FFT32", "extract_features_batch"]

#: Absolute tolerances against :func:`audioreg.features.extract_features` with
#: ``fft_dtype=torch.float64`` (each feature's units: dB for MFCC and contrast, [0, 1] for
#: chroma, tonnetz and zcr), checked per feature by tests/test_features_torch.py; the
#: same values as :data:`audioreg.features.TOLERANCES`. Both paths round a float64 STFT to
#: complex64 and square it in float32; what differs is the FFT implementation's last bits
#: (pocketfft vs torch's CPU FFT or cuFFT), which can move a complex64 rounding, and the
#: summation order of the filter-bank and DCT products (float64 here, float32 in
#: ``extract_features``). The pitch peaks and contrast bins are picked from the same
#: float32 power with piptrack's arithmetic, so the tunings agree. Measured maxima (CPU,
#: the test signals and a minute of four real tracks): MFCC 3.1e-5 dB, chroma 1.6e-6,
#: contrast 3.8e-6 dB, tonnetz 3.4e-7, zcr 0.
TOLERANCES = cpu.TOLERANCES  # the same bounds as the CPU path's against librosa

#: Tolerances for ``fft_dtype=torch.float32`` (a faster, half-memory STFT). A float32 FFT
#: adds rounding noise of ~1e-7 of a frame's largest magnitude to every bin. That is far
#: below the 80 dB ``top_db`` floor of the log-mel power, so MFCC, chroma, tonnetz and the
#: tuning hardly move (measured maxima: MFCC 4.2e-4 dB, chroma 1.6e-6, tonnetz 3.6e-7,
#: identical tunings on eight real tracks). The spectral contrast is another matter:
#: librosa applies ``power_to_db`` to *magnitudes*, so its 80 dB range spans eight decades
#: of magnitude, and its valleys (mean of a band's smallest 2 % of bins) sit right where
#: the float32 noise is, in bands that hold little energy. Measured: on four real tracks
#: (a minute each) all bands but the top one (6.4 kHz to Nyquist, emptied by lossy codecs)
#: within 0.06 dB, the top band up to 5.4 dB (mean 0.1-0.7 dB; median difference 1e-5 dB,
#: ~1.6 % of the values off by more than 1 dB); the noisy chords and clicks of the tests
#: within 0.03 dB; pure sines in every band (max 4-23 dB depending on the frequency, 23 dB
#: and a median of 4.8 dB for 6 kHz). The contrast bound below is what was measured plus a margin,
#: not a guarantee: in principle a valley can move anywhere in the 80 dB range. Use
#: float64 (the default) when the features must match the CPU cache.
TOLERANCES_FFT32 = {"mfcc": 5e-3, "chroma": 1e-4, "contrast": 30.0, "tonnetz": 1e-4, "zcr": 0.0}

#: Frames (summed over the batch) transformed at once. Working memory on the device is at
#: most ~50 KiB per frame with a float64 FFT (the windowed frames and the complex128
#: spectrum, then the complex64 spectrum, the float32 power and its float64 copy for the
#: filter products; plus the FFT library's workspace), so the default chunk needs up to
#: ~0.8 GiB; a float32 FFT needs about half.
MAX_CHUNK_FRAMES = 16384

#: The float32 power spectrogram of the whole batch (4.1 KiB per frame) is kept on the
#: device between the pass that estimates each track's tuning and the chroma when it
#: fits in this many bytes; larger batches recompute each chunk's STFT for the chroma.
KEEP_POWER_BYTES = 2 * 2**30


def extract_features_batch(
    ys: Sequence[np.ndarray],
    *,
    sr: int = cpu.SR,
    device: str | torch.device = "auto",
    fft_dtype: torch.dtype = torch.float64,
    max_chunk_frames: int | None = None,
) -> list[np.ndarray]:
    """:func:`audioreg.features.extract_features` for a batch of tracks, on a GPU when there is one.

    The tracks are zero-padded into one ``[batch, samples]`` tensor on ``device`` and
    their STFT is computed chunk of frames by chunk of frames (all tracks at once):
    each chunk's power gives the mel bands, the contrast's peaks and valleys and the
    pitch peaks of the tuning. Each track's peaks are pooled on the CPU into its tuning
    (:func:`audioreg.features.frames._tuning`), which sets its chroma filter bank; then the
    chroma, the ``top_db`` floors (per track, over its own frames only), the MFCC and the
    tonnetz are finished on the device. The zero-crossing rate is computed on the CPU
    from the waveform exactly as ``extract_features`` does.

    Parameters
    ----------
    ys : sequence of np.ndarray [shape=(n_i,)]
        Mono waveforms at ``sr``, of any lengths (each at least one sample, finite).
    sr : int
        Sample rate of every track.
    device : str or torch.device
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
    fft_dtype : torch.dtype
        ``torch.float64`` (as librosa and ``extract_features``: values within
        :data:`TOLERANCES`) or ``torch.float32`` (faster, less memory; within the looser
        :data:`TOLERANCES_FFT32`).
    max_chunk_frames : int or None
        Frames, summed over the batch, transformed at once (``None``: :data:`MAX_CHUNK_FRAMES`).
        Memory on the device is the padded batch (8 bytes per sample), one chunk's
        working set (~50 KiB per frame), ~0.6 KiB per frame of batch-wide results and,
        when it fits in :data:`KEEP_POWER_BYTES`, the batch's power spectrogram
        (4.1 KiB per frame). Values do not depend on the chunking.

    Returns
    -------
    features : list of np.ndarray [shape=(t_i, 46)], float32
        ``t_i = 1 + n_i // 512``; columns as in :func:`audioreg.features.feature_names`.

    Raises
    ------
    ValueError
        If a track is not a non-empty, finite, mono signal (the message names its index),
        or ``fft_dtype`` is neither float32 nor float64.
    RuntimeError
        If CUDA is asked for but not available.

    Examples
    --------
    >>> X = extract_features_batch([y1, y2], sr=22050)  # doctest: +SKIP
    >>> X[0].shape == (1 + y1.size // 512, 46)  # doctest: +SKIP
    True
    """
    signals = []
    for i, y in enumerate(ys):
        try:
            signals.append(cpu._check_signal(y))
        except ValueError as err:
            raise ValueError(f"track {i}: {err}") from err
    if fft_dtype not in (torch.float32, torch.float64):
        raise ValueError(f"fft_dtype must be torch.float32 or torch.float64, got {fft_dtype}")
    dev = resolve_device(device)
    if not signals:
        return []

    sr, n_fft, hop = int(sr), cpu.N_FFT, cpu.HOP_LENGTH
    bank = cpu._banks(sr, n_fft)
    nf = n_fft // 2 + 1
    n_batch = len(signals)
    frames = np.array([cpu.n_frames(y.size, hop_length=hop) for y in signals])
    t_max = int(frames.max())
    chunk = max(1, min(t_max, int(max_chunk_frames or MAX_CHUNK_FRAMES) // n_batch))
    keep_power = n_batch * t_max * nf * 4 <= KEEP_POWER_BYTES

    window = torch.as_tensor(bank.window, device=dev).to(fft_dtype)
    mel_t = torch.as_tensor(bank.mel.T, dtype=torch.float64, device=dev)  # [nf, 128]
    batch = _padded_batch(signals, t_max, n_fft, hop).to(dev).to(fft_dtype)
    valid = torch.arange(t_max, device=dev)[None, :] < torch.as_tensor(frames, device=dev)[:, None]  # [B, t]

    mel = torch.empty((n_batch, t_max, cpu.N_MELS), dtype=torch.float32, device=dev)
    peak = torch.empty((n_batch, t_max, cpu.N_CONTRAST_BANDS + 1), dtype=torch.float64, device=dev)
    valley = torch.empty_like(peak)
    power_all = torch.empty((n_batch, t_max, nf), dtype=torch.float32, device=dev) if keep_power else None
    found = []
    for j0 in range(0, t_max, chunk):
        j1 = min(j0 + chunk, t_max)
        power = _power(batch, j0, j1, window, n_fft, hop)
        if keep_power:
            power_all[:, j0:j1] = power
        mel[:, j0:j1] = (power.double() @ mel_t).float()
        _contrast_into(power, bank.contrast_bands, peak[:, j0:j1], valley[:, j0:j1])
        found.append(_pitch_peaks(power, bank.pitch_bins, valid[:, j0:j1], sr=sr, n_fft=n_fft))

    tunings = _tunings(found, n_batch)
    chroma_w = torch.as_tensor(np.stack([_chroma_bank(sr, n_fft, tuning).T for tuning in tunings]),
                               dtype=torch.float64, device=dev)  # [B, nf, 12]
    chroma = torch.empty((n_batch, t_max, cpu.N_CHROMA), dtype=torch.float32, device=dev)
    for j0 in range(0, t_max, chunk):
        j1 = min(j0 + chunk, t_max)
        power = power_all[:, j0:j1] if keep_power else _power(batch, j0, j1, window, n_fft, hop)
        chroma[:, j0:j1] = torch.bmm(power.double(), chroma_w).float()
    del power_all, power, batch
    chroma = _normalize(chroma, inf_norm=True)

    log_mel = _power_to_db(mel, valid)
    mfcc = (log_mel.double() @ torch.as_tensor(bank.dct_t, device=dev)).float()
    contrast = (_power_to_db(peak, valid) - _power_to_db(valley, valid)).float()
    tonnetz = (_normalize(chroma, inf_norm=False).double() @ torch.as_tensor(_tonnetz_matrix().T, device=dev)).float()
    stft_features = torch.cat([mfcc, chroma, contrast, tonnetz], dim=-1)
    stft_features = torch.nan_to_num(stft_features, nan=0.0, posinf=0.0, neginf=0.0).cpu().numpy()

    cols = cpu._columns()
    out = []
    for y, t, values in zip(signals, frames, stft_features):
        X = np.empty((t, cpu.N_FEATURES), np.float32)
        X[:, : cols["zcr"].start] = values[:t]
        X[:, cols["zcr"]] = _zcr(y, t, n_fft, hop)[:, None]
        out.append(X)
    return out


def _padded_batch(signals: list[np.ndarray], t_max: int, n_fft: int, hop: int) -> torch.Tensor:
    """``[B, (t_max - 1) * hop + n_fft]`` float32: each track after ``n_fft // 2`` zeros (centred frames)."""
    batch = np.zeros((len(signals), (t_max - 1) * hop + n_fft), np.float32)
    for row, y in zip(batch, signals):
        row[n_fft // 2 : n_fft // 2 + y.size] = y
    return torch.from_numpy(batch)


def _power(batch: torch.Tensor, j0: int, j1: int, window: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Power of frames ``j0..j1-1`` of every track: ``[B, j1 - j0, 1 + n_fft // 2]`` float32.

    The spectrum is rounded to complex64 (as :func:`librosa.stft` stores it) and squared
    as ``re * re + im * im`` in float32, as :func:`audioreg.features.kernels._frame_pass` does.
    """
    frames = batch[:, j0 * hop : (j1 - 1) * hop + n_fft].unfold(-1, n_fft, hop)
    spectrum = torch.fft.rfft(frames * window, dim=-1).to(torch.complex64)
    re, im = spectrum.real, spectrum.imag
    return re * re + im * im


def _contrast_into(power: torch.Tensor, bands: np.ndarray, peak: torch.Tensor, valley: torch.Tensor) -> None:
    """Mean magnitude of the ``q`` largest / smallest bins of each band ``[a, b, q]``, into float64 ``[B, c, 7]``."""
    for k, (a, b, q) in enumerate(bands.tolist()):
        band = power[..., a:b]
        for largest, dest in ((True, peak), (False, valley)):
            selected = torch.topk(band, q, dim=-1, largest=largest, sorted=False).values.double()
            # float32 sqrt via float64, rounded: correctly rounded (torch's float32 sqrt is not on every CPU)
            dest[..., k] = selected.sqrt().float().double().sum(dim=-1) / q


def _pitch_peaks(power: torch.Tensor, pitch_bins: np.ndarray, valid: torch.Tensor, *, sr: int, n_fft: int):
    """piptrack's peaks in the valid frames of a chunk: ``(track, pitch, mag)`` as NumPy arrays.

    Bins ``pitch_bins[0]:pitch_bins[1]`` whose power exceeds a tenth of the frame's
    maximum and is a local maximum of the thresholded power, with piptrack's parabolic
    interpolation in its float32/float64 types (see :func:`audioreg.features.kernels._frame_pass`).
    """
    k0, k1 = (int(k) for k in pitch_bins)
    ref = power.amax(dim=-1, keepdim=True) * torch.tensor(0.1, dtype=torch.float32, device=power.device)
    x0, xm, xp = power[..., k0:k1], power[..., k0 - 1 : k1 - 1], power[..., k0 + 1 : k1 + 1]
    zero = torch.zeros((), dtype=power.dtype, device=power.device)
    zm = torch.where(xm > ref, xm, zero)
    zp = torch.where(xp > ref, xp, zero)
    is_peak = (x0 > ref) & (x0 > zm) & (x0 >= zp) & valid[..., None]
    track, frame, f = torch.nonzero(is_peak, as_tuple=True)
    x0, xm, xp = x0[track, frame, f], xm[track, frame, f], xp[track, frame, f]
    a = (xp + xm).double() - 2.0 * x0.double()
    b = (xp - xm).double() / 2.0
    shift = torch.where(b.abs() >= a.abs(), torch.zeros_like(a), -b / a).float()
    avg = (xp - xm) / torch.tensor(2.0, dtype=torch.float32, device=power.device)
    pitch = ((f + k0).double() + shift.double()) * float(sr) / float(n_fft)
    mag = x0 + (0.5 * avg) * shift
    return track.cpu().numpy(), pitch.float().cpu().numpy(), mag.cpu().numpy()


def _tunings(found: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n_batch: int) -> list[float]:
    """Each track's tuning from its pooled peaks (over all chunks), by :func:`audioreg.features.frames._tuning`."""
    track = np.concatenate([f[0] for f in found])
    pitch = np.concatenate([f[1] for f in found])
    mag = np.concatenate([f[2] for f in found])
    return [cpu._tuning(pitch[track == b], mag[track == b]) for b in range(n_batch)]


@functools.lru_cache(maxsize=256)
def _chroma_bank(sr: int, n_fft: int, tuning: float) -> np.ndarray:
    """The chroma filter bank for one tuning (``[12, nf]`` float32; tunings come in steps of 0.01)."""
    return banks.chroma(sr=sr, n_fft=n_fft, tuning=tuning, n_chroma=cpu.N_CHROMA)


@functools.lru_cache(maxsize=1)
def _tonnetz_matrix() -> np.ndarray:
    """librosa's ``[6, 12]`` tonnetz projection (float64): tonnetz of the identity chroma."""
    return banks.tonnetz(np.eye(cpu.N_CHROMA))


def _normalize(S: torch.Tensor, *, inf_norm: bool) -> torch.Tensor:
    """:func:`librosa.util.normalize` over the last axis (max or L1 norm); rows below ``tiny`` are left as they are."""
    norm = S.abs().amax(dim=-1, keepdim=True) if inf_norm else S.abs().sum(dim=-1, keepdim=True)
    tiny = torch.finfo(S.dtype).tiny
    return S / torch.where(norm < tiny, torch.ones_like(norm), norm)


def _power_to_db(S: torch.Tensor, valid: torch.Tensor, *, amin: float = 1e-10, top_db: float = 80.0) -> torch.Tensor:
    """:func:`librosa.power_to_db` (``ref=1``) of each track's ``[t, d]`` slice of ``S [B, t, d]``.

    The ``top_db`` floor is each track's maximum over its valid frames only. float32
    input takes ``ln`` times ``10 / ln 10`` in float32, as :func:`audioreg.features.frames._power_to_db`.
    """
    if S.dtype == torch.float32:
        db = torch.log(S.clamp_min(amin)) * torch.tensor(10.0 / np.log(10.0), dtype=torch.float32, device=S.device)
    else:
        db = 10.0 * torch.log10(S.clamp_min(amin))
    masked = torch.where(valid[..., None], db, torch.full_like(db, -torch.inf))
    floor = masked.amax(dim=(1, 2), keepdim=True) - top_db
    return torch.maximum(db, floor)


def _zcr(y: np.ndarray, t: int, n_fft: int, hop: int) -> np.ndarray:
    """Zero-crossing rate of ``t`` centred frames (edge padding), as ``extract_features`` computes it: float32."""
    seg = cpu._segment(y, 0, t, hop, n_fft // 2, "edge")
    counts = kernels._zero_crossings(seg, t, hop, n_fft, np.float32(1e-10)).astype(np.float32)
    return counts / np.float32(n_fft)
