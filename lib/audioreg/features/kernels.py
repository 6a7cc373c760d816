"""The compiled loops of the frame pass (:func:`audioreg.features.frames.extract_features`).

numba functions, cached on disk (``cache=True``, filled by one process:
:mod:`audioreg.features.numba_cache`). They live apart from the settings and the driver in
:mod:`audioreg.features.frames`, which imports them on first use: whatever only needs the
feature settings (the stages, a trained model's prediction) does not import numba.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _window_into(seg, window, hop, frames):  # pragma: no cover - compiled
    """``frames[i] = seg[i * hop : i * hop + n] * window`` in float64 (``seg`` float32, ``n = window.size``).

    The product NumPy takes of the float32 frames and the float64 window (each sample
    widened to float64, then multiplied), without a strided view's slow loop.
    """
    n = window.shape[0]
    for i in range(frames.shape[0]):
        src = seg[i * hop : i * hop + n]
        dst = frames[i]
        for j in range(n):
            dst[j] = np.float64(src[j]) * window[j]


@numba.njit(cache=True, nogil=True)
def _power_row(spectrum_row, row):  # pragma: no cover - compiled
    """``|X|**2`` of one frame in float32, ``X`` rounded to complex64 first (as librosa stores it)."""
    for f in range(spectrum_row.shape[0]):
        c = spectrum_row[f]
        re = np.float32(c.real)
        im = np.float32(c.imag)
        row[f] = re * re + im * im


@numba.njit(cache=True, nogil=True)
def _power_into(spectrum, power):  # pragma: no cover - compiled
    """:func:`_power_row` for every frame of a block."""
    for i in range(spectrum.shape[0]):
        _power_row(spectrum[i], power[i])


@numba.njit(cache=True, nogil=True)
def _frame_pass(spectrum, bands, pitch_bins, sr, n_fft, power, peak, valley):  # pragma: no cover - compiled
    """One compiled pass over each frame of a block's ``spectrum`` (complex128 ``[t, nf]``).

    Writes, per frame ``i``:

    - ``power[i]``: ``|X|**2`` in float32, ``X`` rounded to complex64 first (as
      :func:`librosa.stft` stores it);
    - ``peak[i, k]`` / ``valley[i, k]``: mean magnitude of the ``q`` largest / smallest
      bins of contrast band ``k`` (:func:`librosa.feature.spectral_contrast` before
      its dB step; ``bands[k] = [a, b, q]``), see :func:`_band_extremes`;
    - the pitch peaks of :func:`librosa.piptrack` on the power, as
      :func:`librosa.estimate_tuning` calls it: bins in ``pitch_bins`` whose power
      exceeds a tenth of the frame's maximum and is a local maximum, with piptrack's
      parabolic interpolation (its arithmetic and float32/float64 types).

    A power is never negative nor NaN (the squares of finite numbers, at most +inf),
    so the bits of a row read as int32 order as its values do: maxima and minima are
    taken on those integers, which the compiler vectorizes (float ones it may not
    reorder).

    Returns ``pitch`` (float32 Hz), ``mag`` (float32) and the number of peaks filled.
    """
    t, nf = spectrum.shape
    k0, k1 = pitch_bins[0], pitch_bins[1]
    cap = t * ((k1 - k0) // 2 + 1)
    pitch = np.empty(cap, np.float32)
    mag = np.empty(cap, np.float32)
    count = 0
    qmax = 1
    for k in range(bands.shape[0]):
        qmax = max(qmax, bands[k, 2])
    lo = np.empty(qmax, np.float32)
    hi = np.empty(qmax, np.float32)
    work = np.empty(2 * _LANES + 2 * nf, np.int32)  # lane extremes, then candidates
    top_bits = np.empty(1, np.int32)
    top_value = top_bits.view(np.float32)  # the frame maximum's bits, read back as a float
    for i in range(t):
        row = power[i]
        _power_row(spectrum[i], row)
        bits = row.view(np.int32)
        for k in range(bands.shape[0]):
            a, b, q = bands[k, 0], bands[k, 1], bands[k, 2]
            _band_extremes(row, bits, a, b, q, work, lo, hi)
            s_lo = 0.0
            s_hi = 0.0
            for j in range(q):
                s_lo += np.sqrt(lo[j])
                s_hi += np.sqrt(hi[j])
            valley[i, k] = s_lo / q
            peak[i, k] = s_hi / q
        # piptrack: threshold 0.1 x the frame's maximum, local maxima of the thresholded power
        top = bits[0]
        for f in range(1, nf):
            top = max(top, bits[f])
        top_bits[0] = top
        ref = np.float32(0.1) * top_value[0]
        near = row[k0 - 1 : k1 + 1]  # bins k0 - 1 .. k1 (pitch_bins keeps both inside the row)
        for g in range(1, k1 - k0 + 1):
            x0 = near[g]
            if not x0 > ref:
                continue
            f = k0 + g - 1
            xm = near[g - 1]
            xp = near[g + 1]
            zm = xm if xm > ref else np.float32(0.0)
            zp = xp if xp > ref else np.float32(0.0)
            if x0 > zm and x0 >= zp:
                a2 = xp + xm - 2 * x0
                b2 = (xp - xm) / 2
                shift = np.float32(0.0) if np.abs(b2) >= np.abs(a2) else np.float32(-b2 / a2)
                avg = np.float32((xp - xm) / np.float32(2.0))
                pitch[count] = np.float32((f + np.float64(shift)) * sr / n_fft)
                mag[count] = x0 + np.float32(0.5) * avg * shift
                count += 1
    return pitch, mag, count


#: Lanes of :func:`_band_extremes`' bound: the largest ``q`` it bounds (bands with a
#: larger ``q`` scan every bin).
_LANES = 16


@numba.njit(cache=True, nogil=True)
def _band_extremes(row, bits, a, b, q, work, lo, hi):  # pragma: no cover - compiled
    """The ``q`` smallest bins of ``row[a:b]`` into ``lo[:q]`` (ascending) and the ``q``
    largest into ``hi[:q]`` (descending), as sorting the band would place them (``inf`` /
    ``-inf`` where the band has fewer than ``q`` bins).

    Insertion into a running list of ``q`` over every bin (the plain way) pays a
    mispredicted branch per insertion, dozens per band. Here a bound comes first: the
    bins, read as int32 ``bits`` (non-negative floats order as their bits), are dealt to
    :data:`_LANES` lanes (bin ``a + l + _LANES * m`` to lane ``l``) whose minima and
    maxima the compiler vectorizes; the ``q``-th smallest lane minimum is the smallest
    of ``q`` distinct bins, so at least ``q`` bins lie at or under it, and on music
    hardly more (``q`` plus a few). Only those are inserted. Likewise for the largest.
    The lists hold the same values in the same order as the plain way's, so the sums
    taken from them are the same to the bit. ``work`` has room for
    ``2 * _LANES + 2 * (b - a)`` int32.
    """
    band = bits[a:b]  # slices throughout: indices known non-negative, so loops vectorize
    n = band.size
    lane_lo = work[:_LANES]
    lane_hi = work[_LANES : 2 * _LANES]
    if q > _LANES:  # no bound: every bin is a candidate
        t_lo = np.int32(0x7FFFFFFF)
        t_hi = np.int32(-1)
    elif q == 1 and n > 0:  # the band's minimum and maximum themselves
        t_lo = band[0]
        t_hi = band[0]
        for f in range(1, n):
            t_lo = min(t_lo, band[f])
            t_hi = max(t_hi, band[f])
    else:
        for l in range(_LANES):
            lane_lo[l] = 0x7FFFFFFF  # lanes left empty (n < _LANES) bound nothing
            lane_hi[l] = -1
        whole = n - n % _LANES
        for f in range(0, whole, _LANES):
            chunk = band[f : f + _LANES]
            for l in range(_LANES):
                lane_lo[l] = min(lane_lo[l], chunk[l])
                lane_hi[l] = max(lane_hi[l], chunk[l])
        rest = band[whole:]
        for l in range(rest.size):
            lane_lo[l] = min(lane_lo[l], rest[l])
            lane_hi[l] = max(lane_hi[l], rest[l])
        t_lo = _kth(lane_lo, q, False)
        t_hi = _kth(lane_hi, q, True)
    cand_lo = work[2 * _LANES : 2 * _LANES + n]  # indices of the candidates into the band
    cand_hi = work[2 * _LANES + n : 2 * _LANES + 2 * n]
    n_lo = 0
    n_hi = 0
    for f in range(n):  # branch-free: written every time, kept when it qualifies
        v = band[f]
        cand_lo[n_lo] = f
        n_lo += v <= t_lo
        cand_hi[n_hi] = f
        n_hi += v >= t_hi
    values = row[a:b]
    for j in range(q):
        lo[j] = np.inf
        hi[j] = -np.inf
    top = lo[q - 1]
    for c in range(n_lo):
        x = values[cand_lo[c]]
        if x < top:
            j = q - 1
            while j > 0 and lo[j - 1] > x:
                lo[j] = lo[j - 1]
                j -= 1
            lo[j] = x
            top = lo[q - 1]
    bottom = hi[q - 1]
    for c in range(n_hi):
        x = values[cand_hi[c]]
        if x > bottom:
            j = q - 1
            while j > 0 and hi[j - 1] < x:
                hi[j] = hi[j - 1]
                j -= 1
            hi[j] = x
            bottom = hi[q - 1]


@numba.njit(cache=True, nogil=True)
def _kth(values, k, largest):  # pragma: no cover - compiled
    """The ``k``-th smallest (``largest``: largest) of ``values``, ``1 <= k <= values.size``."""
    n = values.shape[0]
    v = values[0]
    for l in range(n):
        v = values[l]
        beyond = 0
        equal = 0
        for j in range(n):
            w = values[j]
            beyond += (w > v) if largest else (w < v)
            equal += w == v
        if beyond < k <= beyond + equal:
            break
    return v


@numba.njit(cache=True, nogil=True)
def _mel_into(power, mel_w, mel_bins, mel):  # pragma: no cover - compiled
    """``mel[i, m] = sum_f power[i, f] * mel_w[m, f]`` over each filter's nonzero bins ``mel_bins[m]``.

    :func:`librosa.feature.melspectrogram` on a power spectrogram, without the ~98 % of
    products with a zero weight. Four frames share each pass over a filter's weights
    (independent sums: the same float32 values as one frame at a time).
    """
    t = power.shape[0]
    i = 0
    while i < t:
        r0 = power[i]
        r1 = power[min(i + 1, t - 1)]
        r2 = power[min(i + 2, t - 1)]
        r3 = power[min(i + 3, t - 1)]
        for m in range(mel_w.shape[0]):
            a0 = np.float32(0.0)
            a1 = np.float32(0.0)
            a2 = np.float32(0.0)
            a3 = np.float32(0.0)
            w = mel_w[m]
            for f in range(mel_bins[m, 0], mel_bins[m, 1]):
                x = w[f]
                a0 += r0[f] * x
                a1 += r1[f] * x
                a2 += r2[f] * x
                a3 += r3[f] * x
            mel[i, m] = a0
            if i + 1 < t:
                mel[i + 1, m] = a1
            if i + 2 < t:
                mel[i + 2, m] = a2
            if i + 3 < t:
                mel[i + 3, m] = a3
        i += 4


@numba.njit(cache=True, nogil=True)
def _zero_crossings(seg, t, hop, frame_length, threshold):  # pragma: no cover - compiled
    """Zero crossings inside each of ``t`` frames of ``seg`` (frame ``j`` starts at ``j * hop``).

    :func:`librosa.zero_crossings` as ``zero_crossing_rate`` calls it: values within
    ``threshold`` of zero count as positive, and a frame's first sample has no crossing.
    Returns the counts (float64); divide by ``frame_length`` for the rate.
    """
    # P(m): crossings between samples 0..m (a crossing at m when seg[m - 1], seg[m] differ
    # in sign); a frame's count is P(end) - P(start), each 0 past the samples. P is summed
    # hop by hop (loops without branches, which the compiler vectorizes), and P(end) is
    # P at the hop boundary nearest it, corrected by the few samples between.
    n = min(seg.size, (t - 1) * hop + frame_length)
    n_hops = (n - 1) // hop  # whole hops within samples 1..n-1
    at_hop = np.zeros(n_hops + 1, np.int64)  # P(c * hop)
    for c in range(n_hops):
        at_hop[c + 1] = at_hop[c] + _crossings(seg, c * hop, (c + 1) * hop, threshold)
    counts = np.zeros(t)
    for j in range(t):
        p_start = at_hop[j] if j <= n_hops else 0
        e = j * hop + frame_length - 1
        if e >= n:
            p_end = 0
        else:
            c = e // hop
            if c < n_hops and (c + 1) * hop - e < e - c * hop:
                p_end = at_hop[c + 1] - _crossings(seg, e, (c + 1) * hop, threshold)
            else:
                p_end = at_hop[c] + _crossings(seg, c * hop, e, threshold)
        counts[j] = p_end - p_start
    return counts


@numba.njit(cache=True, nogil=True)
def _crossings(seg, m0, m1, threshold):  # pragma: no cover - compiled
    """Sign changes between neighbours ``seg[m - 1], seg[m]`` for ``m0 < m <= m1``."""
    before = seg[m0:m1]
    after = seg[m0 + 1 : m1 + 1]  # slices, so indices are known non-negative: a vectorized loop
    c = 0
    for m in range(before.size):
        c += (after[m] < -threshold) != (before[m] < -threshold)
    return c

