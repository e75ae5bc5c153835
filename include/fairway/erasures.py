"""The register of erased people: their one-way hashes (from the erasure receipts) and the removal ledgers of the
stored training frames.

It sits below everything that ingests or reads personal data: feature ingestion (fairway.features.store) leaves
erased people out with `without_erased`, training (fairway.training) accepts a frame changed only by recorded
removals (`frame_removals`), and the erasure itself (fairway.privacy) writes the receipts and the ledgers this
module reads. It imports neither of them, so erasure-aware ingestion runs one way.

A receipt (records/<usecase>/erasure/<time>_<hash prefix>.json) holds `erasure_hash`: an HMAC-SHA256 of a
domain-separated string of the id under the pseudonymisation key. It is not the records' pseudonym (the HMAC
of the bare id), and sequential ids cannot be tried without the key.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any

import pandas as pd

from fairway.config import UseCase, paths, resolve
from fairway.records import pseudonym_key

RECEIPT_DOMAIN = "fairway/erasure-receipt/v1"
REMOVALS_SUFFIX = ".removals.json"


def erasure_hash(uc: UseCase, customer_id: object, key: bytes | None = None) -> str:
    """HMAC-SHA256 of a domain-separated string: not the records' pseudonym (HMAC of the bare id), and not
    computable for guessed ids without the pseudonymisation key."""
    message = "\x1f".join((RECEIPT_DOMAIN, uc.name, str(customer_id))).encode()
    return hmac.digest(key or pseudonym_key(), message, "sha256").hex()


def receipts_dir(uc: UseCase) -> Path:
    return paths().records / uc.name / "erasure"


def receipts(usecase: UseCase | str | None) -> list[tuple[Path, dict[str, Any]]]:
    """Every erasure receipt of the use case, oldest first."""
    folder = receipts_dir(resolve(usecase))
    if not folder.is_dir():
        return []
    return [(path, json.loads(path.read_text())) for path in sorted(folder.glob("*.json"))]


def erased_hashes(uc: UseCase) -> set[str]:
    return {str(receipt["erasure_hash"]) for _, receipt in receipts(uc)}


def without_erased(uc: UseCase, frame: pd.DataFrame, hashes: set[str] | None = None) -> tuple[pd.DataFrame, int]:
    """`frame` without the rows of erased people (by their erasure hash), and how many rows that dropped.
    `hashes`: `erased_hashes(uc)` when the caller filters several frames (the receipts are read once)."""
    hashes = erased_hashes(uc) if hashes is None else hashes
    key = uc.entity.join_key
    if not hashes or frame.empty or key not in frame:
        return frame, 0
    secret = pseudonym_key()
    erased = frame[key].map(lambda value: erasure_hash(uc, value, secret) in hashes).to_numpy(dtype=bool)
    return frame[~erased].reset_index(drop=True), int(erased.sum())


def removals_path(frame: Path) -> Path:
    """The removal ledger of a stored training frame: `<frame>.removals.json` beside it."""
    return frame.with_name(frame.stem + REMOVALS_SUFFIX)


def frame_removals(path: Path, built: str, current: str) -> list[dict[str, Any]] | None:
    """The recorded removals that turned the training frame built with fingerprint `built` into the file whose
    fingerprint is now `current`; None when nothing recorded explains the difference."""
    ledger = removals_path(path)
    if not ledger.is_file():
        return None
    data = json.loads(ledger.read_text())
    if data.get("built_fingerprint") != built or data.get("fingerprint") != current:
        return None
    return list(data.get("removals", []))
