"""The BS.1770 meter (audioreg.data.loudness): pyloudnorm's values, gain, silence, the reference tone."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest

from audioreg.data.loudness import integrated_loudness
from audioreg.synth import SAMPLE_RATES

SR = 22050


def test_integrated_loudness_matches_pyloudnorm():
    rng = np.random.default_rng(0)
    for sr in SAMPLE_RATES:
        x = rng.standard_normal((2, int(3.3 * sr))) * np.linspace(0.01, 0.5, int(3.3 * sr))
        ref = pyloudnorm.Meter(sr).integrated_loudness(x.T)
        assert integrated_loudness(x, sr=sr) == pytest.approx(ref, abs=1e-3)
        mono = pyloudnorm.Meter(sr).integrated_loudness(x[0])
        assert integrated_loudness(x[0], sr=sr) == pytest.approx(mono, abs=1e-3)
        assert integrated_loudness(0.5 * x, sr=sr) == pytest.approx(ref - 20 * np.log10(2), abs=1e-3)
    assert integrated_loudness(np.zeros((1, SR)), sr=SR) == float("-inf")


def test_full_scale_997_hz_sine_reads_minus_3_lufs():
    """BS.1770: a 0 dB FS 997 Hz sine in one channel reads -3.01 LKFS (+3 dB for two channels)."""
    sr = 48000
    x = np.sin(2 * np.pi * 997.0 * np.arange(5 * sr) / sr)
    assert integrated_loudness(x, sr=sr) == pytest.approx(-3.01, abs=0.1)
    assert integrated_loudness(np.vstack([x, x]), sr=sr) == pytest.approx(0.0, abs=0.1)
