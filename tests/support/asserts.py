"""Assertions shared by the unit tests."""
import numpy as np


def assert_same_state(a: dict, b: dict) -> None:
    """Two state dicts (arrays compared bit for bit, NaN equal to NaN; other values with ==)."""
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            assert np.array_equal(a[key], b[key], equal_nan=True), key
        else:
            assert a[key] == b[key], key
