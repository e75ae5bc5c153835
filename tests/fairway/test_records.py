"""fairway.records: the pseudonym and the input fingerprint are the documented hashes, whatever the speed-ups."""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd

from fairway.records import input_fingerprints, pseudonymise


def test_pseudonym_is_the_hmac_sha256_of_the_id_under_the_key(monkeypatch) -> None:
    monkeypatch.setenv("FAIRWAY_PSEUDONYM_KEY", "a-test-key")
    ids = pd.Series([7, 100042, 3], index=[5, 6, 9])
    expected = [hmac.new(b"a-test-key", str(i).encode(), hashlib.sha256).hexdigest()[:32] for i in ids]
    result = pseudonymise(ids)
    assert list(result) == expected and list(result.index) == [5, 6, 9]
    monkeypatch.setenv("FAIRWAY_PSEUDONYM_KEY", "another-key")
    assert not set(pseudonymise(ids)) & set(expected)  # without the key, no link


def test_pseudonym_key_is_created_once_under_fairway_home(home, monkeypatch) -> None:
    monkeypatch.delenv("FAIRWAY_PSEUDONYM_KEY", raising=False)
    first = pseudonymise(pd.Series(["c1"]))
    key_file = home / "secrets" / "pseudonym.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert pseudonymise(pd.Series(["c1"])).equals(first)


def test_input_fingerprint_is_the_sha256_of_the_inputs_in_column_order() -> None:
    inputs = pd.DataFrame({"income": [2500.5, 1800.0], "housing": ["rent", "own"], "tenure_months": [12, 240]})
    expected = [hashlib.sha256("\x1f".join(map(str, row)).encode()).hexdigest()[:32]
                for row in inputs.astype(str).itertuples(index=False)]  # fmt: skip
    assert list(input_fingerprints(inputs)) == expected
    swapped = inputs[["housing", "income", "tenure_months"]]
    assert list(input_fingerprints(swapped)) != expected
