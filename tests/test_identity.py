"""Behaviour is pinned: three real-process runs give the result files recorded before the code was reshaped
(tests/golden/identity.json, taken with tests/support/identity.py --save)."""
from __future__ import annotations

import json

import pytest

from conftest import SHARED_REAL
from support import identity

pytestmark = pytest.mark.skipif(not SHARED_REAL.exists(), reason="../shared/data/real not present")


@pytest.mark.parametrize("scenario", sorted(identity.SCENARIOS))
def test_results_identical_to_golden(scenario, tmp_path):
    golden = json.loads(identity.GOLDEN.read_text())[scenario]
    assert identity.SCENARIOS[scenario](tmp_path) == golden
