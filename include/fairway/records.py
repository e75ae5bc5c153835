"""Records of decisions (AI Act Art. 12) and the pseudonymisation of the people they concern (GDPR Art. 25).

A subject key is an HMAC-SHA256 of the customer id under a secret key: records can be linked to a person only
by whoever holds the key (the controller, for erasure or access requests), not by a reader of the records.
The key comes from FAIRWAY_PSEUDONYM_KEY, or is created once under FAIRWAY_HOME/secrets (mode 0600).

Batch prediction records: FAIRWAY_HOME/records/<usecase>/predictions/<YYYY-MM>.parquet, one partition per month,
replaced atomically.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import pandas as pd

from fairway.config import UseCase, paths
from fairway.data import to_arrow, write_parquet_atomic

PREDICTION_COLUMNS = [
    "subject", "score", "decision", "threshold", "model_name", "model_version", "feature_service",
    "interval_start", "interval_end", "features_as_of", "input_fingerprint", "run_id",
]  # fmt: skip


def _key() -> bytes:
    if os.environ.get("FAIRWAY_PSEUDONYM_KEY"):
        return os.environ["FAIRWAY_PSEUDONYM_KEY"].encode()
    path = paths().home / "secrets" / "pseudonym.key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def pseudonymise(ids: pd.Series) -> pd.Series:
    """HMAC-SHA256 (first 32 hex digits) of each id under the pseudonymisation key."""
    key = _key()
    values = ids.astype(str).to_numpy()
    return pd.Series([hmac.digest(key, v.encode(), "sha256").hex()[:32] for v in values], index=ids.index, dtype=object)


def input_fingerprints(inputs: pd.DataFrame) -> pd.Series:
    """SHA-256 (first 32 hex digits) of each row's model inputs, in column order: ties a decision to its inputs."""
    text = inputs.astype(str)
    joined = text.iloc[:, 0]
    for column in text.columns[1:]:
        joined = joined + "\x1f" + text[column]
    digests = [hashlib.sha256(row.encode()).hexdigest()[:32] for row in joined.to_numpy()]
    return pd.Series(digests, index=inputs.index, dtype=object)


def prediction_partition(uc: UseCase, month: str) -> Path:
    return paths().records / uc.name / "predictions" / f"{month}.parquet"


def write_predictions(uc: UseCase, month: str, records: pd.DataFrame) -> Path:
    """Replace the month's partition with `records` (sorted by subject: the same input gives the same bytes)."""
    missing = [c for c in PREDICTION_COLUMNS if c not in records]
    if missing:
        raise ValueError(f"prediction records lack {missing}")
    ordered = records[PREDICTION_COLUMNS].sort_values("subject").reset_index(drop=True)
    if ordered["subject"].duplicated().any():
        raise ValueError(f"{month}: more than one prediction for a subject")
    return write_parquet_atomic(to_arrow(ordered), prediction_partition(uc, month))
