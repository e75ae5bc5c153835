"""Erasure of a person (GDPR Art. 17) and the retention limit of what Fairway keeps about people (Art. 5(1)(e)).

`erase(usecase, customer_id)` removes one person from everything Fairway writes about them:

- raw snapshots and labels of every month (each file rewritten atomically without the person's rows);
- the offline-store partitions of every feature view (every folder under data/offline/<usecase>, so views that
  left the config are covered too);
- the Feast online store: on SQLite, the person's rows in every table (the entity key serialised as Feast does),
  deleted with `secure_delete` and followed by a WAL checkpoint, so the bytes leave the file; on Redis, the
  person's key (one hash per entity holds every view);
- the stored training frames under datasets/<usecase>: rewritten without the person; a ledger next to each
  frame (`<frame>.removals.json`) records the fingerprint as built and after each removal, so the drift reference
  of a model trained on it still loads (`fairway.training.read_frame` accepts exactly the recorded changes);
- batch prediction records (every month's partition, by pseudonym) and the online decision log (rows whose
  subject is the pseudonym; SQLite with `secure_delete` and a checkpoint, or any SQLAlchemy URL, e.g. PostgreSQL,
  where the table is vacuumed afterwards);
- Airflow's task logs under FAIRWAY_HOME/airflow/logs: a failed validation or scoring names up to five ids per
  problem; occurrences of the id (as a whole token) and of the pseudonym are replaced by `[erased]`.

What stays, by design: trained models (a fitted model holds coefficients, not the person's record; the next
training run builds its frame from the stores without them), monitoring reports (aggregates per month and
group, no subject), MLflow run metadata, and the erasure receipts. Also outside Fairway's reach: the conf of
an Airflow run that carried the id (Airflow's metadata DB), remote log stores, backups and file-system snapshots.

The receipt (records/<usecase>/erasure/<time>_<hash prefix>.json) holds a one-way hash of the id that is not
the records' pseudonym (HMAC-SHA256 of a domain-separated string under the pseudonymisation key: sequential ids
cannot be tried without the key), the UTC time and the count removed per store; no personal data. A second
erasure of the same id finds its hash among the receipts and does nothing. Feature ingestion drops the rows of
erased ids (`without_erased`), so a later delivery that still holds the person does not bring them back.

`enforce_retention(usecase, as_of_month)` deletes what is older than the retention period: see its docstring.

The erasure is not atomic across stores: a crash leaves no receipt, and running it again removes the rest. It
should not run while `feature_pipeline` rewrites a month of the same use case (a partition read before the
erasure and written after it would hold the person again; later ingestion drops them once the receipt exists).
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import json
import logging
import re
import sqlite3
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fairway.config import FEATURE_REPO_DIR, UseCase, month_str, paths, resolve
from fairway.data import LABELS_FILE, SNAPSHOT_FILE, month_bounds, write_atomic, write_parquet_atomic
from fairway.records import decision_log_url, pseudonym, pseudonym_key

log = logging.getLogger(__name__)

RECEIPT_DOMAIN = "fairway/erasure-receipt/v1"
DECISION_TABLE = "fairway_decisions"  # records.DecisionLog's table
ERASED = b"[erased]"
MIN_SCRUB_LENGTH = 6  # shorter ids match too much unrelated text in logs: those logs are left alone (and said so)
REMOVALS_SUFFIX = ".removals.json"


class ErasureError(RuntimeError):
    """The erasure cannot be done as asked (an unsupported online store, an empty id)."""


# --- hashes and receipts -----------------------------------------------------------------------------------


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


# --- parquet files -----------------------------------------------------------------------------------------


def _matches(table: pa.Table, column: str, values: list[str]) -> pa.ChunkedArray | None:
    if column not in table.column_names:
        return None
    return pc.fill_null(pc.is_in(pc.cast(table[column], pa.string()), value_set=pa.array(values, pa.string())), False)


def _drop_rows(path: Path, column: str, values: list[str]) -> int:
    """Rewrite a parquet file (atomically) without the rows whose `column` is one of `values`; rows removed."""
    table = pq.read_table(path)
    mask = _matches(table, column, values)
    hits = int(pc.sum(mask).as_py() or 0) if mask is not None else 0
    if hits:
        write_parquet_atomic(table.filter(pc.invert(mask)), path)
    return hits


def _month_files(root: Path, pattern: str) -> list[Path]:
    return sorted(root.glob(pattern)) if root.is_dir() else []


# --- training frames ---------------------------------------------------------------------------------------


def _removals_path(frame: Path) -> Path:
    return frame.with_name(frame.stem + REMOVALS_SUFFIX)


def frame_removals(path: Path, built: str, current: str) -> list[dict[str, Any]] | None:
    """The recorded removals that turned the training frame built with fingerprint `built` into the file whose
    fingerprint is now `current`; None when nothing recorded explains the difference."""
    ledger = _removals_path(path)
    if not ledger.is_file():
        return None
    data = json.loads(ledger.read_text())
    if data.get("built_fingerprint") != built or data.get("fingerprint") != current:
        return None
    return list(data.get("removals", []))


def _drop_frame_rows(path: Path, mask_of: Callable[[pa.Table], pa.ChunkedArray | None], reason: str, at: str) -> int:
    """Remove rows from a stored training frame and record the change in its ledger."""
    from fairway.training import fingerprint

    table = pq.read_table(path)
    mask = mask_of(table)
    hits = int(pc.sum(mask).as_py() or 0) if mask is not None else 0
    if not hits:
        return 0
    ledger_path = _removals_path(path)
    ledger = json.loads(ledger_path.read_text()) if ledger_path.is_file() else {}
    built = ledger.get("built_fingerprint") or fingerprint(pd.read_parquet(path))
    write_parquet_atomic(table.filter(pc.invert(mask)), path)
    ledger = {
        "built_fingerprint": built,
        "fingerprint": fingerprint(pd.read_parquet(path)),
        "removals": [*ledger.get("removals", []), {"at": at, "reason": reason, "rows": hits}],
    }
    write_atomic(ledger_path, lambda tmp: tmp.write_text(json.dumps(ledger, indent=2)))
    return hits


def _training_frames(uc: UseCase) -> list[Path]:
    return _month_files(paths().home / "datasets" / uc.name, "*.parquet")


# --- SQLite, the online store, the decision log ------------------------------------------------------------


def _sqlite_delete(path: Path, statements: list[tuple[str, tuple[Any, ...]]]) -> tuple[int, list[str]]:
    """Run DELETE statements in one transaction with secure_delete on (freed content is overwritten with zeros),
    then checkpoint the WAL into the database and truncate it. Returns the rows deleted and any warning."""
    warnings: list[str] = []
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA secure_delete=ON")
        removed = 0
        with conn:
            for sql, args in statements:
                removed += conn.execute(sql, args).rowcount
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy and busy[0]:
            warnings.append(f"{path.name}: the WAL checkpoint was blocked by a reader; it completes at the next one")
    finally:
        conn.close()
    return removed, warnings


def _sqlite_tables_with(conn: sqlite3.Connection, column: str) -> list[str]:
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return [t for t in tables if column in {row[1] for row in conn.execute(f"PRAGMA table_info({_quote(t)})")}]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _repo_config(uc: UseCase) -> Any:
    from feast.repo_config import load_repo_config

    from fairway.features.store import feature_store_yaml, set_environment

    set_environment(uc)
    return load_repo_config(FEATURE_REPO_DIR.resolve(), feature_store_yaml())


def _sqlite_online_path(config: Any) -> Path:
    path = Path(config.online_store.path)
    return path if path.is_absolute() else FEATURE_REPO_DIR.resolve() / path


def _entity_key(uc: UseCase, customer_id: str) -> Any:
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    # the entity's value type is STRING (fairway.features.definitions)
    return EntityKey(join_keys=[uc.entity.join_key], entity_values=[Value(string_val=customer_id)])


def _erase_online(uc: UseCase, customer_id: str) -> tuple[dict[str, Any], list[str]]:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import _redis_key
    from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig

    config = _repo_config(uc)
    version = config.entity_key_serialization_version
    entity_key = _entity_key(uc, customer_id)
    if isinstance(config.online_store, SqliteOnlineStoreConfig):
        path = _sqlite_online_path(config)
        if not path.is_file():
            return {"store": "sqlite", "rows": 0}, []
        key = serialize_entity_key(entity_key, entity_key_serialization_version=version)
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
            tables = _sqlite_tables_with(conn, "entity_key")  # every view's table (this file holds one project)
        removed, warnings = _sqlite_delete(
            path, [(f"DELETE FROM {_quote(t)} WHERE entity_key = ?", (key,)) for t in tables]
        )
        return {"store": "sqlite", "rows": removed}, warnings
    if isinstance(config.online_store, RedisOnlineStoreConfig):
        client = RedisOnlineStore()._get_client(config.online_store)
        redis_key = _redis_key(config.project, entity_key, entity_key_serialization_version=version)
        return {"store": "redis", "keys": int(client.delete(redis_key))}, []
    raise ErasureError(
        f"online store type {type(config.online_store).__name__} is not supported by the erasure (SQLite, Redis)"
    )


def _delete_decisions(uc: UseCase, where: Callable[[Any], Any]) -> tuple[int, list[str]]:
    """Delete decision-log rows of this use case matching `where(table)`: on SQLite with secure_delete and a WAL
    checkpoint, elsewhere followed by VACUUM of the table (dead rows stay in PostgreSQL's files until then)."""
    import sqlalchemy as sa

    url = decision_log_url(uc)
    is_sqlite = url.startswith("sqlite")
    if is_sqlite:
        database = sa.engine.make_url(url).database
        if not database or not Path(database).is_file():
            return 0, []
    engine = sa.create_engine(url, connect_args={"timeout": 30} if is_sqlite else {})
    warnings: list[str] = []
    try:
        if not sa.inspect(engine).has_table(DECISION_TABLE):
            return 0, []
        table = sa.Table(DECISION_TABLE, sa.MetaData(), autoload_with=engine)
        with engine.connect() as connection:
            if is_sqlite:
                connection.exec_driver_sql("PRAGMA secure_delete=ON")
            removed = int(connection.execute(table.delete().where(table.c.usecase == uc.name, where(table))).rowcount)
            connection.commit()
            if is_sqlite:
                busy = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if busy and busy[0]:
                    warnings.append("decision log: the WAL checkpoint was blocked by a reader (the service?)")
        if removed and not is_sqlite:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql(f"VACUUM {DECISION_TABLE}")
    finally:
        engine.dispose()
    return removed, warnings


# --- logs --------------------------------------------------------------------------------------------------


def _scrub_logs(folder: Path, needles: list[str]) -> int:
    """Replace each needle (as a whole token) by [erased] in every file under `folder`; files changed."""
    if not folder.is_dir() or not needles:
        return 0
    token = b"|".join(re.escape(n.encode()) for n in needles)
    pattern = re.compile(rb"(?<![A-Za-z0-9_])(?:" + token + rb")(?![A-Za-z0-9_])")
    changed = 0
    for file in sorted(folder.rglob("*")):
        if not file.is_file() or file.is_symlink():
            continue
        content = file.read_bytes()
        scrubbed, hits = pattern.subn(ERASED, content)
        if hits:
            write_atomic(file, functools.partial(Path.write_bytes, data=scrubbed))
            changed += 1
    return changed


# --- erasure -----------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def erase(usecase: UseCase | str | None, customer_id: str) -> dict[str, Any]:
    """Erase one person from every store of the use case and keep a receipt; a second call is a no-op.

    Returns `erased` (False for the no-op), a `message`, the `receipt` path and the counts `removed` per store.
    """
    uc = resolve(usecase)
    customer_id = str(customer_id).strip()
    if not customer_id:
        raise ErasureError("no customer id given")
    secret = pseudonym_key()
    digest = erasure_hash(uc, customer_id, secret)
    for path, receipt in receipts(uc):
        if receipt.get("erasure_hash") == digest:
            message = (
                f"already erased at {receipt.get('erased_at')} (receipt {path.name}): nothing to do, nothing written"
            )
            log.info("erasure %s: %s", digest[:12], message)
            return {"erased": False, "message": message, "receipt": str(path), "removed": receipt.get("removed", {})}

    subject = pseudonym(customer_id, secret)
    ids, at = [customer_id], _now()
    home = paths()
    raw_root, offline_root = home.raw / uc.name, home.offline / uc.name
    online, warnings = _erase_online(uc, customer_id)
    decisions, more = _delete_decisions(uc, lambda table: table.c.subject == subject)
    warnings += more
    removed: dict[str, Any] = {
        "raw_snapshot_rows": sum(_drop_rows(f, uc.entity.join_key, ids) for f in _month_files(raw_root, f"*/{SNAPSHOT_FILE}")),
        "raw_label_rows": sum(_drop_rows(f, uc.entity.join_key, ids) for f in _month_files(raw_root, f"*/{LABELS_FILE}")),
        "offline_rows": {
            view.name: sum(_drop_rows(f, uc.entity.join_key, ids) for f in _month_files(view, "*.parquet"))
            for view in (sorted(p for p in offline_root.iterdir() if p.is_dir()) if offline_root.is_dir() else [])
        },
        "online_store": online,
        "training_frame_rows": sum(
            _drop_frame_rows(f, lambda t: _matches(t, uc.entity.join_key, ids), "erasure", at)
            for f in _training_frames(uc)
        ),
        "prediction_records": sum(
            _drop_rows(f, "subject", [subject]) for f in _month_files(home.records / uc.name / "predictions", "*.parquet")
        ),
        "decision_log_rows": decisions,
    }  # fmt: skip
    if len(customer_id) >= MIN_SCRUB_LENGTH:
        removed["airflow_log_files_scrubbed"] = _scrub_logs(home.airflow_home / "logs", [customer_id, subject])
    else:
        removed["airflow_log_files_scrubbed"] = 0
        warnings.append(f"ids shorter than {MIN_SCRUB_LENGTH} characters are not searched for in Airflow's logs")
    receipt = {
        "usecase": uc.name,
        "erasure_hash": digest,
        "hash": "HMAC-SHA256 under the pseudonymisation key of a domain-separated string of the id",
        "erased_at": at,
        "removed": removed,
        "warnings": warnings,
        "kept": [
            "trained models and their MLflow runs (no record of the person; the next training leaves them out)",
            "monitoring reports (aggregates per month and group)",
            "the conf of an Airflow run that carried the id, in Airflow's metadata DB",
        ],
    }
    stamp = at.replace(":", "").replace("-", "").replace("+0000", "Z")
    path = receipts_dir(uc) / f"{stamp}_{digest[:16]}.json"
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(receipt, indent=2)))
    log.info("erasure %s: removed %s; receipt %s", digest[:12], removed, path)
    message = f"erased; receipt {path.name}"
    if not _total(removed):
        message = f"no data held for this id; receipt {path.name} (ingestion will leave the id out from now on)"
    return {"erased": True, "message": message, "receipt": str(path), "removed": removed}


def _total(counts: Any) -> int:
    """The sum of every count in a nested dict of counts (labels such as the store's type are not counted)."""
    if isinstance(counts, dict):
        return sum(_total(value) for value in counts.values())
    return counts if isinstance(counts, int) and not isinstance(counts, bool) else 0


# --- retention ---------------------------------------------------------------------------------------------


def retention_cutoff(as_of_month: str, months: int) -> pd.Timestamp:
    """The end of `as_of_month` minus `months`: what was recorded before it has been kept long enough."""
    return month_bounds(month_str(as_of_month))[1] - pd.DateOffset(months=months)


def _expired(month: str, cutoff: pd.Timestamp) -> bool:
    """A month partition is expired when the whole month lies before the cutoff."""
    try:
        return month_bounds(month)[1] <= cutoff
    except ValueError:
        return False  # not a month partition


def _retention(uc: UseCase, features: Iterable[str]) -> int:
    """The shortest retention among the entity (every file holds the key) and the personal-data features given:
    a file cannot be kept longer than any column in it may be."""
    periods = [uc.entity.tags.retention_months]
    known = {f.name for f in uc.features}
    periods += [
        uc.feature(f).tags.retention_months for f in features if f in known and uc.feature(f).tags.personal_data
    ]
    return min(periods)


def enforce_retention(usecase: UseCase | str | None, as_of_month: str) -> dict[str, Any]:
    """Delete what is older than its retention period as of the end of `as_of_month`; returns counts.

    Records about a person (batch prediction partitions, decision-log rows, the online store's rows) follow the
    entity's `retention_months`: a month's prediction partition is deleted once the whole month lies more than
    that many months before the end of `as_of_month`; decision rows by `recorded_at`, online rows by their event
    time. Raw snapshots and labels, offline partitions and the rows of stored training frames are personal data
    too and follow the same rule, each with the shortest retention among the entity and the personal-data
    features it holds (a file cannot be kept longer than any of its columns may be; deleting earlier is allowed,
    keeping longer is not). With the default config every period is 84 months, far beyond the training window,
    the drift reference and the views' TTLs, so nothing the pipelines still read is deleted; a much shorter
    retention would shorten what training and point-in-time lookups can see, which is its purpose.

    Not touched: monitoring reports and model documentation (aggregates without subjects), the models, the
    erasure receipts (no personal data, kept as evidence). A Redis online store is not scanned here: give its
    keys Feast's `key_ttl_seconds` (online_store block of feature_store.production.yaml) of the retention
    period, so a key expires that long after its last write.
    """
    uc = resolve(usecase)
    as_of = month_str(as_of_month)
    home = paths()
    entity_cutoff = retention_cutoff(as_of, uc.entity.tags.retention_months)
    counts: dict[str, Any] = {"as_of": as_of, "cutoff": entity_cutoff.isoformat()}

    partitions = _month_files(home.records / uc.name / "predictions", "*.parquet")
    expired = [p for p in partitions if _expired(p.stem, entity_cutoff)]
    counts["prediction_partitions"] = sorted(p.stem for p in expired)
    counts["prediction_records"] = sum(pq.ParquetFile(p).metadata.num_rows for p in expired)
    for path in expired:
        path.unlink()

    counts["decision_log_rows"], warnings = _delete_decisions(
        uc, lambda table: table.c.recorded_at < entity_cutoff.to_pydatetime()
    )

    snapshot_cutoff = retention_cutoff(as_of, _retention(uc, (f.name for f in uc.snapshot_features)))
    labels_cutoff = retention_cutoff(as_of, _retention(uc, [uc.label.feature]))
    raw: list[str] = []
    for folder in _month_files(home.raw / uc.name, "*"):
        for name, cutoff in ((SNAPSHOT_FILE, snapshot_cutoff), (LABELS_FILE, labels_cutoff)):
            if (folder / name).is_file() and _expired(folder.name, cutoff):
                (folder / name).unlink()
                raw.append(f"{folder.name}/{name}")
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    counts["raw_files"] = raw

    offline: dict[str, list[str]] = {}
    for view in _month_files(home.offline / uc.name, "*"):
        columns = [f.name for f in uc.features if f.view == view.name]
        cutoff = retention_cutoff(as_of, _retention(uc, columns))
        gone = [p for p in _month_files(view, "*.parquet") if _expired(p.stem, cutoff)]
        for path in gone:
            path.unlink()
        if gone:
            offline[view.name] = sorted(p.stem for p in gone)
    counts["offline_partitions"] = offline

    from fairway.training import MONTH_COLUMN

    last_expired = _last_expired_month(retention_cutoff(as_of, _retention(uc, (f.name for f in uc.features))))

    def expired_rows(table: pa.Table) -> pa.ChunkedArray | None:
        if MONTH_COLUMN not in table.column_names:
            return None
        return pc.fill_null(pc.less_equal(pc.cast(table[MONTH_COLUMN], pa.string()), last_expired), False)

    at = _now()
    counts["training_frame_rows"] = sum(
        _drop_frame_rows(f, expired_rows, "retention", at) for f in _training_frames(uc)
    )

    counts["online_rows"], more = _online_retention(uc, entity_cutoff)
    counts["warnings"] = warnings + more
    log.info("retention as of %s (records: %s months): %s", as_of, uc.entity.tags.retention_months, counts)
    return counts


def _last_expired_month(cutoff: pd.Timestamp) -> str:
    """The last month that ends at or before `cutoff` (a month's start): 'YYYY-MM' labels compare as text."""
    return str(pd.Period(cutoff - pd.Timedelta(microseconds=1), freq="M"))


def _online_retention(uc: UseCase, cutoff: pd.Timestamp) -> tuple[int, list[str]]:
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig

    from fairway.features.online_store import _stored_form

    config = _repo_config(uc)
    if not isinstance(config.online_store, SqliteOnlineStoreConfig):
        return 0, []
    path = _sqlite_online_path(config)
    if not path.is_file():
        return 0, []
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        tables = [t for t in _sqlite_tables_with(conn, "entity_key") if t in _sqlite_tables_with(conn, "event_ts")]
    stored = _stored_form(cutoff.to_pydatetime())
    return _sqlite_delete(path, [(f"DELETE FROM {_quote(t)} WHERE event_ts < ?", (stored,)) for t in tables])
