import numpy as np
import pytest

from audioreg.features import frames as F
from audioreg.features import kernels as K
from audioreg.features.reference import reference_features
from conftest import SR, clicks, tone, triad


def block(X, name):
    start = 0
    for b, n in F.BLOCKS:
        if b == name:
            return X[:, start : start + n]
        start += n
    raise KeyError(name)


def test_layout_and_shape(signals):
    X = F.extract_features(y=signals["tone440"], sr=SR)
    assert X.dtype == np.float32
    assert X.shape == (F.n_frames(signals["tone440"].size), 46)
    assert len(F.feature_names()) == 46 == F.N_FEATURES
    assert F.feature_names()[0] == ("mfcc", 0) and F.feature_names()[-1] == ("zcr", 0)
    assert np.isfinite(X).all()


def test_tone_chroma_and_zcr(signals):
    X = F.extract_features(y=signals["tone440"], sr=SR)
    chroma = block(X, "chroma")[5:-5].mean(axis=0)
    assert chroma.argmax() == 9  # A
    zcr = block(X, "zcr")[5:-5].mean()
    assert zcr == pytest.approx(2 * 440 / SR, rel=0.03)


def test_triad_chroma_peaks_on_its_notes(signals):
    chroma = block(F.extract_features(y=signals["c_major"], sr=SR), "chroma")[5:-5].mean(axis=0)
    assert set(np.argsort(chroma)[-3:]) == {0, 4, 7}
    a_minor = block(F.extract_features(y=triad(57, minor=True), sr=SR), "chroma")[5:-5].mean(axis=0)
    assert set(np.argsort(a_minor)[-3:]) == {9, 0, 4}


def test_clicks_period_in_frames(signals):
    """Click energy repeats every 0.5 s = 21.5 frames at hop 512: the time axis is right."""
    e = block(F.extract_features(y=signals["clicks120"], sr=SR), "mfcc")[:, 0]
    e = e - e.mean()
    ac = np.correlate(e, e, mode="full")[e.size - 1 :]
    lag = 10 + int(np.argmax(ac[10:40]))
    assert lag in (21, 22)


def test_silence_is_finite_and_flat(signals):
    X = F.extract_features(y=signals["silence"], sr=SR)
    assert np.isfinite(X).all()
    assert np.all(block(X, "chroma") == 0)
    assert np.all(block(X, "zcr") == 0)


def test_gain_changes_only_the_energy_coefficient():
    y = triad(62, seconds=2.0)
    a = F.extract_features(y=y, sr=SR)
    b = F.extract_features(y=0.5 * y, sr=SR)
    shift = 20 * np.log10(0.5) * np.sqrt(F.N_MELS)  # orthonormal DCT of a constant dB offset
    assert np.median(b[:, 0] - a[:, 0]) == pytest.approx(shift, abs=0.5)
    np.testing.assert_allclose(block(b, "mfcc")[:, 1:], block(a, "mfcc")[:, 1:], atol=0.05)
    np.testing.assert_allclose(block(b, "chroma"), block(a, "chroma"), atol=1e-4)
    np.testing.assert_allclose(block(b, "contrast"), block(a, "contrast"), atol=0.05)
    np.testing.assert_allclose(block(b, "zcr"), block(a, "zcr"), atol=1e-6)


def librosa_blocks(y, sr=SR):
    """Each block from librosa's own functions, with the settings extract_features uses."""
    import librosa

    stft = librosa.stft(y, n_fft=F.N_FFT, hop_length=F.HOP_LENGTH, center=True)
    mag = np.abs(stft)
    power = mag**2
    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_fft=F.N_FFT, n_mels=F.N_MELS)
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, n_fft=F.N_FFT, hop_length=F.HOP_LENGTH, n_chroma=F.N_CHROMA)
    return {
        "mfcc": librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=F.N_MFCC).T,
        "chroma": chroma.T,
        "contrast": librosa.feature.spectral_contrast(S=mag, sr=sr, n_fft=F.N_FFT, hop_length=F.HOP_LENGTH,
                                                      n_bands=F.N_CONTRAST_BANDS).T,
        "tonnetz": librosa.feature.tonnetz(chroma=chroma, sr=sr).T,
        "zcr": librosa.feature.zero_crossing_rate(y, frame_length=F.N_FFT, hop_length=F.HOP_LENGTH, center=True).T,
        "tuning": librosa.estimate_tuning(S=power, sr=sr, n_fft=F.N_FFT, bins_per_octave=F.N_CHROMA),
    }


def assert_matches_librosa(y, sr=SR):
    fast = F.extract_features(y=y, sr=sr)
    ref = librosa_blocks(y, sr)
    for name, _ in F.BLOCKS:
        np.testing.assert_allclose(block(fast, name), ref[name], rtol=0, atol=F.TOLERANCES[name], err_msg=name)
    return ref["tuning"]


def test_matches_librosa_functions_with_the_same_settings():
    rng = np.random.default_rng(0)
    y = (triad(64, seconds=3.0) + 0.02 * rng.standard_normal(3 * SR)).astype(np.float32)
    assert_matches_librosa(y)
    ref = reference_features(y=y, sr=SR)  # the naive path agrees outside its CQT tonnetz
    fast = F.extract_features(y=y, sr=SR)
    for name in ("mfcc", "chroma", "contrast", "zcr"):
        np.testing.assert_allclose(block(fast, name), block(ref, name), rtol=0, atol=F.TOLERANCES[name], err_msg=name)


@pytest.mark.parametrize("cents", [-40, 0, 23])
def test_tuning_estimate_is_librosas(cents):
    """Chroma uses the tuning librosa.estimate_tuning finds, also for a detuned chord."""
    rng = np.random.default_rng(1)
    seconds = 4.0
    t = np.arange(int(seconds * SR)) / SR
    f0 = 261.63 * 2 ** (cents / 1200)
    y = sum(np.sin(2 * np.pi * f0 * r * t) / (1 + i) for i, r in enumerate((1, 1.26, 1.5, 2, 3)))
    y = (0.2 * y + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    tuning = assert_matches_librosa(y)
    # chroma within 1e-5 of librosa's means the same tuning bin; piptrack at n_fft 2048 is coarse
    assert tuning == pytest.approx(cents / 100, abs=0.1)


def test_real_music_matches_librosa(shared_data):
    """A minute of a real track (decoded, resampled), every block within tolerance."""
    from audioreg.data.audio import load_audio

    y, sr = load_audio(shared_data / "music" / "wesnoth-1.16-music__revelation.ogg", sr=SR, max_duration=60.0)
    assert_matches_librosa(y, sr)


def test_short_signal_gives_one_frame():
    X = F.extract_features(y=tone(440, seconds=0.005), sr=SR)
    assert X.shape == (1, 46) and np.isfinite(X).all()


@pytest.mark.parametrize("bad, msg", [(np.zeros((2, 100)), "mono"), (np.zeros(0), "empty"), (np.array([0.0, np.nan]), "NaN")])
def test_bad_signals_raise(bad, msg):
    with pytest.raises(ValueError, match=msg):
        F.extract_features(y=bad, sr=SR)


def test_feature_params_are_the_cache_key_inputs():
    p = F.feature_params()
    assert p["version"] == F.FEATURE_VERSION and p["sr"] == 22050 and p["hop_length"] == 512


def test_blocks_and_recomputed_chroma_give_the_same_matrix(monkeypatch):
    """Blocks of 100 frames (many boundaries, a partial last block), and the long-signal path
    that recomputes each block's STFT for the chroma, give the one-block matrix."""
    rng = np.random.default_rng(0)
    y = np.concatenate([triad(64, seconds=6.0), clicks(120.0, seconds=5.0), triad(57, seconds=4.3, minor=True)])
    y = (y + 0.01 * rng.standard_normal(y.size)).astype(np.float32)
    whole = F.extract_features(y=y, sr=SR, block_frames=0)
    blocked = F.extract_features(y=y, sr=SR, block_frames=100)
    monkeypatch.setattr(F, "KEEP_POWER_FRAMES", 50)
    recomputed = F.extract_features(y=y, sr=SR, block_frames=100)
    assert blocked.shape == whole.shape == recomputed.shape and blocked.dtype == np.float32
    np.testing.assert_allclose(blocked, whole, rtol=0, atol=1e-5)
    np.testing.assert_allclose(recomputed, blocked, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(block(blocked, "zcr"), block(whole, "zcr"))


def test_band_extremes_are_the_ends_of_the_sorted_band():
    """The contrast's q smallest and largest bins of a band, as sorting gives them: with ties,
    zeros and +inf, empty and one-bin bands, q above the lane count and above the band size."""
    rng = np.random.default_rng(0)
    nf = 1025
    work = np.empty(2 * K._LANES + 2 * nf, np.int32)
    lo = np.empty(64, np.float32)
    hi = np.empty(64, np.float32)
    for trial in range(400):
        row = (rng.random(nf) ** rng.uniform(1, 12)).astype(np.float32)
        if trial % 4 == 1:
            row = np.round(row * 4).astype(np.float32) / 4  # many ties
        if trial % 4 == 2:
            row[rng.random(nf) < 0.2] = 0.0
            row[rng.random(nf) < 0.01] = np.inf
        a = int(rng.integers(0, nf))
        b = int(rng.integers(a, min(nf, a + 500) + 1))
        q = int(rng.integers(1, 40))
        K._band_extremes(row, row.view(np.int32), a, b, q, work, lo, hi)
        band = np.sort(row[a:b])
        want_lo = np.full(q, np.inf, np.float32)
        want_hi = np.full(q, -np.inf, np.float32)
        want_lo[: min(q, band.size)] = band[:q]
        want_hi[: min(q, band.size)] = band[::-1][:q]
        np.testing.assert_array_equal(lo[:q], want_lo)
        np.testing.assert_array_equal(hi[:q], want_hi)


def test_zero_crossings_count_each_frame():
    """Per frame, the sign changes between neighbours (values within the threshold of zero count
    as positive), for hops that do and do not divide the frame, and frames past the samples."""
    rng = np.random.default_rng(1)
    threshold = np.float32(1e-10)
    for trial in range(200):
        seg = rng.standard_normal(int(rng.integers(1, 4000))).astype(np.float32)
        seg[rng.random(seg.size) < 0.2] = 0.0
        seg[rng.random(seg.size) < 0.05] = -1e-11
        hop, frame_length, t = int(rng.integers(1, 700)), int(rng.integers(1, 2100)), int(rng.integers(1, 30))
        neg = seg < -threshold
        crossing = np.concatenate([[0], neg[1:] != neg[:-1]])
        n = min(seg.size, (t - 1) * hop + frame_length)
        prefix = np.cumsum(crossing[:n])
        start = np.array([prefix[j * hop] if 0 < j * hop < n else 0 for j in range(t)])
        end = np.array([prefix[j * hop + frame_length - 1] if j * hop + frame_length - 1 < n else 0 for j in range(t)])
        np.testing.assert_array_equal(K._zero_crossings(seg, t, hop, frame_length, threshold), end - start)


def test_stage_timings_cover_the_run():
    timings = {}
    F.extract_features(y=triad(60, seconds=3.0), sr=SR, timings=timings)
    assert {"stft", "power+contrast+peaks", "mel", "zcr", "chroma", "mfcc", "tonnetz+stack"} <= set(timings)
    assert all(v >= 0 for v in timings.values())


@pytest.mark.parametrize("sr", [22050, 44100, 16000])
def test_banks_equal_librosas_to_the_bit(sr):
    """The extractor builds its window, filter banks and small transforms without librosa
    (whose modules import scipy.signal): each must be librosa's own, bit for bit."""
    import warnings

    import librosa

    from audioreg.features import banks

    assert np.array_equal(banks.hann(2048), librosa.filters.get_window("hann", 2048, fftbins=True))
    assert np.array_equal(banks.fft_frequencies(sr=sr, n_fft=2048), librosa.fft_frequencies(sr=sr, n_fft=2048))
    assert np.array_equal(banks.mel(sr=sr, n_fft=2048, n_mels=128), librosa.filters.mel(sr=sr, n_fft=2048, n_mels=128))
    for tuning in (0.0, -0.5, -0.07, 0.13, 0.49):
        assert np.array_equal(banks.chroma(sr=sr, n_fft=2048, tuning=tuning),
                              librosa.filters.chroma(sr=sr, n_fft=2048, tuning=tuning, n_chroma=12))
    rng = np.random.default_rng(sr)
    for dtype in (np.float32, np.float64):
        x = rng.random((200, 12)).astype(dtype)
        x[3] = 0  # a silent frame stays as it is
        assert np.array_equal(banks.normalize(x, norm=np.inf, axis=1), librosa.util.normalize(x, norm=np.inf, axis=1))
        assert np.array_equal(banks.tonnetz(x.T), librosa.feature.tonnetz(chroma=x.T, sr=sr))
    power = rng.random((200, 7)) ** 8
    assert np.array_equal(banks.power_to_db(power), librosa.power_to_db(power))
    freqs = rng.uniform(150, 4000, 3000).astype(np.float32)
    assert banks.pitch_tuning(freqs) == librosa.pitch_tuning(freqs, resolution=0.01, bins_per_octave=12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert banks.pitch_tuning(np.zeros(3)) == librosa.pitch_tuning(np.zeros(3)) == 0.0
    with pytest.raises(ValueError, match="finite"):
        banks.normalize(np.array([[np.nan, 1.0]]), norm=1, axis=1)


def test_extracting_features_imports_neither_librosa_nor_scipy_signal():
    """A process that only extracts features never pays for importing librosa and scipy.signal."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\nfrom audioreg.features import frames\n"
            "frames.extract_features(y=np.random.default_rng(0).standard_normal(22050).astype(np.float32))\n"
            "print(sorted(m for m in ('librosa', 'scipy.signal', 'scipy.stats') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
