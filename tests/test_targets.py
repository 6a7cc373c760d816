import numpy as np
import pytest

from audioreg.targets import METADATA_COLUMNS, TARGETS, VALID_RANGES, clip_to_valid


def test_eleven_targets_all_in_the_schema():
    assert len(TARGETS) == 11 and set(TARGETS) <= set(METADATA_COLUMNS)
    assert set(VALID_RANGES) == set(TARGETS)


def test_clip_to_valid_uses_documented_ranges_only():
    pred = np.zeros((2, 11))
    pred[0] = -5.0
    pred[1] = 500.0
    out = clip_to_valid(pred)
    lo = np.array([VALID_RANGES[t][0] for t in TARGETS])
    hi = np.array([VALID_RANGES[t][1] for t in TARGETS])
    key = TARGETS.index("key")  # a pitch class on a circle: wrapped into [0, 12), not clipped
    others = [j for j in range(len(TARGETS)) if j != key]
    np.testing.assert_array_equal(out[0, others], np.maximum(-5.0, lo)[others])
    np.testing.assert_array_equal(out[1, others], hi[others])
    assert (out[0, key], out[1, key]) == (7.0, 8.0)  # -5 = 7 and 500 = 8 (mod 12)
    assert pred[0, 0] == -5.0  # input untouched
    inside = np.array([[0.5] * 3 + [120.0] + [0.5] * 4 + [-7.0, 4.0, 5.0]])
    np.testing.assert_array_equal(clip_to_valid(inside), inside)
    with pytest.raises(ValueError, match="shape"):
        clip_to_valid(np.zeros((2, 3)))
