"""Erasure of a person (GDPR Art. 17) and the retention limit of what Fairway keeps about people (Art. 5(1)(e)).

`erase(usecase, customer_id)` removes one person from everything Fairway writes about them:

- raw snapshots and labels of every month (each file rewritten atomically without the person's rows);
- the offline-store partitions of every feature view (every folder under data/offline/<usecase>, so views that
  left the config are covered too);
- the Feast online store: on SQLite, the person's rows in every table (the entity key serialised as Feast does),
  deleted with `secure_delete` and followed by a WAL checkpoint, so the bytes leave the file; on Redis, the
  person's key (one hash per entity holds every view);
- the stored training frames under datasets/<usecase> (keyed by pseudonym; frames of older versions by id):
  rewritten without the person; a ledger next to each frame (`<frame>.removals.json`, fairway.erasures) records
  the fingerprint as built and after each removal, so the drift reference of a model trained on it still loads;
- batch prediction records (every month's partition, by pseudonym) and the online decision log (rows whose
  subject is the pseudonym; SQLite with `secure_delete` and a checkpoint, or any SQLAlchemy URL, e.g. PostgreSQL,
  where the table is vacuumed afterwards), and the reviews of the person's decisions in the same database
  (fairway.review, rows carrying the decision's pseudonym: the reviewer's free-text reason goes with them);
- every temporary file of an interrupted write anywhere under FAIRWAY_HOME (removed), and every other file of
  the personal-data stores (raw, offline, training frames, records): the id and the pseudonym, as whole tokens,
  replaced by `[erased]`;
- Airflow's task logs (FAIRWAY_HOME/airflow/logs, and AIRFLOW_HOME/logs when Airflow's home is elsewhere) and
  the service's log files under BENTOML_HOME/logs: the same replacement;
- Airflow's metadata DB (`settings.airflow_db_url`): the conf of every DAG run and the audit log's `extra` (what
  the trigger form sent), redacted in place, and in the conf of every other run any value that is an id erased
  before (its hash is among the receipts); every other text column searched and reported. The erasure DAG's
  own run keeps its conf until its last step (`redact_run_conf`).

Searched and never altered: the models, in MLflow's artifacts and in BentoML's store (models and bentos), for
the id, the pseudonym and the person's model inputs in the input examples. A model's files are the approved
ones (hashed in the promotion ledger); their input examples are synthetic (fairway.training.synthetic_example),
so the search finds nothing; a hit (a model logged before that) is a warning in the receipt, never a silent pass.

The receipt (records/<usecase>/erasure/<time>_<hash prefix>.json, fairway.erasures) holds a keyed one-way hash
of the id, the UTC time, the count removed per store, what was searched (every location with its counts), the
warnings and what is kept and why (`KEPT`); no personal data. A second erasure of the same id finds its hash
among the receipts and does nothing. Feature ingestion drops the rows of erased ids (`without_erased`), so a
later delivery that still holds the person does not bring them back.

`enforce_retention(usecase, as_of_month)` deletes what is older than the retention period: see its docstring.

The erasure is not atomic across stores: a crash leaves no receipt, and running it again removes the rest. It
should not run while `feature_pipeline` rewrites a month of the same use case (a partition read before the
erasure and written after it would hold the person again; later ingestion drops them once the receipt exists).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fairway import settings
from fairway.config import FEATURE_REPO_DIR, UseCase, month_str, paths, resolve
from fairway.data import (
    LABELS_FILE,
    SNAPSHOT_FILE,
    month_bounds,
    temp_leftovers,
    write_atomic,
    write_parquet_atomic,
)
from fairway.erasures import (  # noqa: F401 - the erasure register, re-exported: privacy builds on it
    RECEIPT_DOMAIN,
    REMOVALS_SUFFIX,
    erased_hashes,
    erasure_hash,
    frame_removals,
    receipts,
    receipts_dir,
    removals_path,
    without_erased,
)
from fairway.records import decision_log_url, pseudonym, pseudonym_key
from fairway.review import REVIEW_TABLE, delete_reviews
from fairway.training import MONTH_COLUMN, SUBJECT_COLUMN, fingerprint

log = logging.getLogger(__name__)

DECISION_TABLE = "fairway_decisions"  # records.DecisionLog's table
ERASED = b"[erased]"
MIN_SCRUB_LENGTH = 6  # shorter ids match too much unrelated text in logs: those logs are left alone (and said so)
EXAMPLE_FILES = ("input_example.json", "serving_input_example.json")  # what MLflow logs beside a model
STALE_TEMP_SECONDS = 24 * 3600  # retention removes write_atomic leftovers older than this (no writer takes a day)
SQLITE_HEADER = b"SQLite format 3\x00"


class ErasureError(RuntimeError):
    """The erasure cannot be done as asked (an unsupported online store, an empty id)."""


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


def _drop_frame_rows(path: Path, mask_of: Callable[[pa.Table], pa.ChunkedArray | None], reason: str, at: str) -> int:
    """Remove rows from a stored training frame and record the change in its ledger."""
    table = pq.read_table(path)
    mask = mask_of(table)
    hits = int(pc.sum(mask).as_py() or 0) if mask is not None else 0
    if not hits:
        return 0
    ledger_path = removals_path(path)
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


def _decision_log_exists(uc: UseCase) -> bool:
    """Whether the decision log's database can hold rows: an SQLite file that is not there holds none (and the
    erasure creates no database)."""
    import sqlalchemy as sa

    url = decision_log_url(uc)
    if not url.startswith("sqlite"):
        return True
    database = sa.engine.make_url(url).database
    return bool(database) and Path(str(database)).is_file()


def _delete_reviews(uc: UseCase, subject: str | None = None, before: datetime | None = None) -> int:
    """The reviews of decisions (fairway.review) of a subject or older than `before`; rows removed. The review log
    deletes with secure_delete and a WAL checkpoint on SQLite, with VACUUM elsewhere."""
    return delete_reviews(uc, subject=subject, before=before) if _decision_log_exists(uc) else 0


def _delete_decisions(uc: UseCase, where: Callable[[Any], Any]) -> tuple[int, list[str]]:
    """Delete decision-log rows of this use case matching `where(table)`: on SQLite with secure_delete and a WAL
    checkpoint, elsewhere followed by VACUUM of the table (dead rows stay in PostgreSQL's files until then)."""
    import sqlalchemy as sa

    if not _decision_log_exists(uc):
        return 0, []
    url = decision_log_url(uc)
    is_sqlite = url.startswith("sqlite")
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


# --- files: logs, temporary leftovers, anything that is not a parquet partition ----------------------------


def _token_pattern(needles: list[str]) -> re.Pattern[bytes]:
    """The needles as whole tokens (not inside a longer id or word)."""
    token = b"|".join(re.escape(n.encode()) for n in needles)
    return re.compile(rb"(?<![A-Za-z0-9_])(?:" + token + rb")(?![A-Za-z0-9_])")


def _scrub_files(files: Iterable[Path], needles: list[str]) -> int:
    """Replace each needle (as a whole token) by [erased] in each file; files changed."""
    if not needles:
        return 0
    pattern, changed = _token_pattern(needles), 0
    for file in files:
        scrubbed, hits = pattern.subn(ERASED, file.read_bytes())
        if hits:
            write_atomic(file, functools.partial(Path.write_bytes, data=scrubbed))
            changed += 1
    return changed


def _regular_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _scrub_logs(folder: Path, needles: list[str]) -> int:
    """Replace each needle (as a whole token) by [erased] in every file under `folder`; files changed."""
    return _scrub_files(_regular_files(folder), needles)


def _is_sqlite(path: Path) -> bool:
    """An SQLite database or one of its side files: handled by the SQL steps, never rewritten as bytes."""
    if path.name.endswith(("-wal", "-shm", "-journal")):
        return True
    with open(path, "rb") as handle:
        return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER


def _other_files(folders: Iterable[Path]) -> list[Path]:
    """Every file in the stores of personal data that no other step rewrites: not a parquet partition, not a
    temporary leftover, not an SQLite database, not an erasure receipt."""
    receipts_root = paths().records
    found = []
    for folder in folders:
        for path in _regular_files(folder):
            if path.suffix == ".parquet" or path.parent.name == "erasure" and receipts_root in path.parents:
                continue
            if path.name.startswith(".") and ".tmp" in path.name or _is_sqlite(path):
                continue
            found.append(path)
    return found


def _remove(files: list[Path]) -> int:
    for path in files:
        path.unlink(missing_ok=True)
    return len(files)


# --- the models: MLflow's artifacts and BentoML's store (searched, never altered) --------------------------


def _person_rows(uc: UseCase, customer_id: str) -> list[dict[str, Any]]:
    """The person's model inputs in every raw snapshot, as JSON values: what an input example would hold."""
    rows = []
    for path in _month_files(paths().raw / uc.name, f"*/{SNAPSHOT_FILE}"):
        table = pq.read_table(path)
        mask = _matches(table, uc.entity.join_key, [customer_id])
        if mask is None:
            continue
        columns = [c for c in uc.model_inputs if c in table.column_names]
        for row in table.filter(mask).select(columns).to_pylist():
            rows.append(json.loads(json.dumps(row, default=str)))
    return rows


def _example_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of an MLflow input example (`input_example.json`: split orient; `serving_input_example.json`:
    the same under `dataframe_split`); [] for anything else."""
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        return []
    data = data.get("dataframe_split", data) if isinstance(data, dict) else {}
    columns, rows = data.get("columns"), data.get("data")
    if not isinstance(columns, list) or not isinstance(rows, list):
        return []
    return [dict(zip(columns, row, strict=False)) for row in rows if isinstance(row, list)]


def _holds_row(example: list[dict[str, Any]], person: list[dict[str, Any]]) -> bool:
    """Whether an example row equals one of the person's rows on every input they share."""
    for row in example:
        for theirs in person:
            shared = set(row) & set(theirs)
            if shared and all(row[c] == theirs[c] for c in shared):
                return True
    return False


@dataclass
class ModelSearch:
    """What the search of one model store found: files read, input examples among them, and the files that
    hold the id or pseudonym (as bytes) or one of the person's input rows (input examples)."""

    location: str
    files: int = 0
    examples: int = 0
    holding: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"files_searched": self.files, "input_examples": self.examples, "holding_the_person": len(self.holding)}


def _search_models(location: str, root: Path, needles: list[str], person: list[dict[str, Any]],
                   skip: Callable[[Path], bool] = lambda _: False) -> ModelSearch:  # fmt: skip
    pattern = _token_pattern(needles)
    found = ModelSearch(location)
    for path in _regular_files(root):
        if skip(path):
            continue
        found.files += 1
        hit = bool(pattern.search(path.read_bytes()))
        if path.name in EXAMPLE_FILES:
            found.examples += 1
            hit = hit or _holds_row(_example_rows(path), person)
        if hit:
            found.holding.append(str(path.relative_to(root)))
    return found


def _bentoml_home() -> Path:
    return Path(settings.env("BENTOML_HOME") or paths().home / "bentoml")


# --- Airflow's metadata DB: the conf of runs and the audit log ---------------------------------------------

# the columns where Airflow keeps what a person typed into a trigger form: redacted in place
AIRFLOW_REDACTED = {"dag_run": "conf", "log": "extra"}


def _airflow_engine() -> Any:
    import sqlalchemy as sa

    url = settings.airflow_db_url()
    if url is None:
        return None
    return sa.create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})


def _redact_column(connection: Any, table: Any, column: str, pattern: re.Pattern[bytes], where: Any) -> int:
    """Replace the needles (whole tokens) in one column of the rows matching `where`; rows changed."""
    target = table.c[column]
    changed = 0
    for key, value in connection.execute(table.select().with_only_columns(table.c.id, target).where(where)).all():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        redacted, hits = pattern.subn(ERASED, text.encode())
        if not hits:
            continue
        new: Any = redacted.decode()
        if not isinstance(value, str):
            new = json.loads(new)
        connection.execute(table.update().where(table.c.id == key).values({column: new}))
        changed += 1
    return changed


def _redact_erased_ids(connection: Any, runs: Any, where: Any, is_erased: Callable[[str], bool]) -> int:
    """The top-level text values of DAG run confs that are ids erased before (their hash is in a receipt),
    replaced by [erased]; rows changed. An erasure run's conf can hold its id after the run: `dag.test()` writes
    it back after the last step, and a last step that failed left it."""
    changed = 0
    for key, value in connection.execute(runs.select().with_only_columns(runs.c.id, runs.c.conf).where(where)).all():
        conf = json.loads(value) if isinstance(value, str) else value
        if not isinstance(conf, dict):
            continue
        new = {k: ERASED.decode() if isinstance(v, str) and v.strip() and is_erased(v.strip()) else v
               for k, v in conf.items()}  # fmt: skip
        if new != conf:
            connection.execute(
                runs.update().where(runs.c.id == key).values(conf=json.dumps(new) if isinstance(value, str) else new)
            )
            changed += 1
    return changed


def _holding_columns(connection: Any, metadata: Any, needle: str) -> dict[str, int]:
    """Every other text column of Airflow's DB holding the needle: rows per `table.column` (searched, left)."""
    import sqlalchemy as sa

    found: dict[str, int] = {}
    for table in metadata.sorted_tables:
        for column in table.columns:
            if AIRFLOW_REDACTED.get(table.name) == column.name:
                continue
            if not isinstance(column.type, sa.String | sa.Text | sa.JSON):
                continue
            count = connection.execute(
                sa.select(sa.func.count()).select_from(table).where(sa.cast(column, sa.Text).contains(needle))
            ).scalar()
            if count:
                found[f"{table.name}.{column.name}"] = int(count)
    return found


def scrub_airflow_metadata(
    needles: list[str], keep_run: tuple[str, str] | None = None, is_erased: Callable[[str], bool] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Redact the needles (the id, the pseudonym) in Airflow's metadata DB: the conf of every DAG run and the
    audit log's `extra` (the trigger form's conf), except the run `keep_run` (dag_id, run_id), whose conf the
    erasure DAG's last step redacts. With `is_erased`, the conf values it says are ids erased before are redacted
    too (`_redact_erased_ids`). Every other text column is searched and reported, not changed. SQLite:
    secure_delete and a WAL checkpoint; PostgreSQL: VACUUM of the changed tables. Returns counts and warnings."""
    import sqlalchemy as sa

    engine = _airflow_engine()
    if engine is None:
        return {"searched": False}, ["Airflow's metadata DB was not searched: no URL (set FAIRWAY_AIRFLOW_DB_URL)"]
    pattern = _token_pattern(needles)
    is_sqlite = engine.url.get_backend_name() == "sqlite"
    counts: dict[str, Any] = {"searched": True, "database": engine.url.get_backend_name()}
    try:
        metadata = sa.MetaData()
        metadata.reflect(engine, only=lambda name, _: True)
        if "dag_run" not in metadata.tables:
            return {"searched": False}, ["Airflow's metadata DB has no dag_run table: not searched"]
        with engine.connect() as connection:
            if is_sqlite:
                connection.exec_driver_sql("PRAGMA secure_delete=ON")
            runs = metadata.tables["dag_run"]
            where: Any = sa.true()
            if keep_run is not None:
                where = sa.not_(sa.and_(runs.c.dag_id == keep_run[0], runs.c.run_id == keep_run[1]))
            counts["dag_run_confs_redacted"] = _redact_column(connection, runs, "conf", pattern, where)
            if is_erased is not None:
                counts["earlier_erasure_confs_redacted"] = _redact_erased_ids(connection, runs, where, is_erased)
            counts["audit_log_rows_redacted"] = 0
            if "log" in metadata.tables:
                counts["audit_log_rows_redacted"] = _redact_column(connection, metadata.tables["log"], "extra",
                                                                   pattern, sa.true())  # fmt: skip
            connection.commit()
            counts["other_columns_holding_the_id"] = {}
            for needle in needles:
                for column, rows in _holding_columns(connection, metadata, needle).items():
                    counts["other_columns_holding_the_id"][column] = rows
        if is_sqlite:
            counts["wal_checkpoint"] = _sqlite_compact(engine)
        if not is_sqlite:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                for name in AIRFLOW_REDACTED:
                    connection.exec_driver_sql(f"VACUUM {name}")
    finally:
        engine.dispose()
    warnings = [f"Airflow's {column} holds the id in {rows} row(s): not changed by the erasure"
                for column, rows in counts["other_columns_holding_the_id"].items()]  # fmt: skip
    if counts.get("wal_checkpoint") == "blocked":
        warnings.append("Airflow's SQLite WAL checkpoint was blocked by a reader: earlier page images stay in its "
                        "-wal file until the next TRUNCATE checkpoint")  # fmt: skip
    return counts, warnings


def _sqlite_compact(engine: Any, attempts: int = 20) -> str:
    """Rewrite an SQLite database without free space (VACUUM: Airflow's own writes leave old row bytes in freed
    space, without secure_delete) and reset its WAL (TRUNCATE checkpoint), retrying while a reader holds it."""
    import time

    import sqlalchemy as sa

    for attempt in range(attempts):
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("PRAGMA busy_timeout=1000")
            with contextlib.suppress(sa.exc.OperationalError):  # busy: the checkpoint below says so
                connection.exec_driver_sql("VACUUM")
            busy = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy or not busy[0]:
            return "done"
        time.sleep(0.25 * (attempt + 1))
    return "blocked"


def redact_run_conf(dag_id: str, run_id: str, customer_id: str) -> dict[str, Any]:
    """The erasure DAG's last step: the id leaves its own run's conf (and any audit-log row written since the
    erasure step). Returns counts only."""
    customer_id = str(customer_id).strip()
    needles = [customer_id, pseudonym(customer_id)]
    counts, warnings = scrub_airflow_metadata(needles)
    log.info("run conf of %s %s redacted: %s", dag_id, run_id, counts)
    return {**counts, "warnings": warnings}


# --- erasure -----------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


KEPT = [
    "the trained models, in MLflow and in BentoML's store: their files are the approved ones (hashed in the "
    "promotion ledger); their input examples are synthetic (the reference applicant, medians and most frequent "
    "values of the training rows), and a fitted model holds coefficients learnt from everyone's rows, not the "
    "person's record; the next training builds its frame without them",
    "MLflow run metadata, the gate reports, the model documentation and the monitoring reports: aggregates per "
    "model, month and group, no subject",
    "protected attributes of other people: only in the raw snapshots, the offline fairness-audit view and the "
    "stored training frames (the mitigation's groups and the gate's fairness metrics), deleted after the "
    "retention period of the catalogue; the person's were removed from all three",
    "this receipt: a keyed one-way hash of the id (no personal data), kept as evidence of the erasure",
    "outside Fairway's reach: remote log stores, the service's standard output collected elsewhere, backups and "
    "file-system snapshots",
]


@dataclass
class Sweep:
    """What one erasure did: the rows and files removed per store, what was searched (location -> counts),
    warnings."""

    removed: dict[str, Any] = field(default_factory=dict)
    searched: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _erase_stores(uc: UseCase, sweep: Sweep, ids: list[str], subject: str, at: str) -> None:
    """The person's rows out of the raw data, the offline and online stores, the training frames and records."""
    home = paths()
    raw_root, offline_root = home.raw / uc.name, home.offline / uc.name
    online, warnings = _erase_online(uc, ids[0])
    decisions, more = _delete_decisions(uc, lambda table: table.c.subject == subject)
    reviews = _delete_reviews(uc, subject=subject)
    sweep.warnings += warnings + more
    snapshots, labels = _month_files(raw_root, f"*/{SNAPSHOT_FILE}"), _month_files(raw_root, f"*/{LABELS_FILE}")
    views = sorted(p for p in offline_root.iterdir() if p.is_dir()) if offline_root.is_dir() else []
    frames = _training_frames(uc)
    predictions = _month_files(home.records / uc.name / "predictions", "*.parquet")

    def person(table: pa.Table) -> pa.ChunkedArray | None:
        by_subject, by_id = _matches(table, SUBJECT_COLUMN, [subject]), _matches(table, uc.entity.join_key, ids)
        if by_subject is None or by_id is None:
            return by_subject if by_id is None else by_id  # frames built before keys were pseudonymised hold ids
        return pc.or_(by_subject, by_id)

    sweep.removed.update({
        "raw_snapshot_rows": sum(_drop_rows(f, uc.entity.join_key, ids) for f in snapshots),
        "raw_label_rows": sum(_drop_rows(f, uc.entity.join_key, ids) for f in labels),
        "offline_rows": {view.name: sum(_drop_rows(f, uc.entity.join_key, ids) for f in _month_files(view, "*.parquet"))
                         for view in views},
        "online_store": online,
        "training_frame_rows": sum(_drop_frame_rows(f, person, "erasure", at) for f in frames),
        "prediction_records": sum(_drop_rows(f, "subject", [subject]) for f in predictions),
        "decision_log_rows": decisions,
        "review_rows": reviews,
    })  # fmt: skip
    sweep.searched.update({
        "raw snapshots and labels": {"files": len(snapshots) + len(labels)},
        "offline store": {"views": len(views), "partitions": sum(len(_month_files(v, "*.parquet")) for v in views)},
        "online store": {"store": online.get("store")},
        "training frames": {"files": len(frames)},
        "prediction records": {"partitions": len(predictions)},
        "decision log": {"table": DECISION_TABLE},
        "reviews of decisions": {"table": REVIEW_TABLE},
    })  # fmt: skip


def _erase_files(uc: UseCase, sweep: Sweep, needles: list[str]) -> None:
    """Temporary leftovers of interrupted writes (all of them: a write in flight during an erasure may hold the
    person, and failing it is what should happen), then every other file of the personal-data stores and
    Airflow's task logs: the id and pseudonym replaced by [erased]."""
    home = paths()
    leftovers = temp_leftovers(home.home)
    sweep.removed["temporary_files_removed"] = _remove(leftovers)
    sweep.searched["temporary files of interrupted writes (all of FAIRWAY_HOME)"] = {"removed": len(leftovers)}
    stores = [home.raw / uc.name, home.offline / uc.name, home.home / "datasets" / uc.name, home.records / uc.name]
    others = _other_files(stores)
    searchable = len(needles[0]) >= MIN_SCRUB_LENGTH
    if not searchable:
        sweep.warnings.append(f"ids shorter than {MIN_SCRUB_LENGTH} characters are not searched for in logs and "
                              "other files (too much unrelated text matches)")  # fmt: skip
    sweep.removed["other_files_scrubbed"] = _scrub_files(others, needles) if searchable else 0
    sweep.searched["other files of the stores (not partitions, databases or receipts)"] = {"files": len(others)}
    folders = {home.airflow_home / "logs", Path(settings.env("AIRFLOW_HOME") or home.airflow_home).resolve() / "logs"}
    logs = sorted({path for folder in folders for path in _regular_files(folder)})
    sweep.removed["airflow_log_files_scrubbed"] = _scrub_files(logs, needles) if searchable else 0
    sweep.searched["Airflow's task logs"] = {"files": len(logs)}


def _search_model_stores(uc: UseCase, sweep: Sweep, customer_id: str, needles: list[str],
                         person: list[dict[str, Any]]) -> None:  # fmt: skip
    """MLflow's local artifacts and BentoML's store (models, bentos), searched for the id, the pseudonym and the
    person's input rows; BentoML's log files scrubbed. Model files are never altered (their hash is the
    ledger's): a model that holds the person is a warning naming the file."""
    bentoml_home = _bentoml_home()
    logs = bentoml_home / "logs"
    stores = [("MLflow artifacts", paths().mlflow, lambda _: False),
              ("BentoML's store (models and bentos)", bentoml_home, lambda p: logs in p.parents)]  # fmt: skip
    for location, root, skip in stores:
        found = _search_models(location, root, needles, person, skip)
        sweep.searched[location] = found.counts()
        sweep.warnings += [f"{location}: {path} holds the person and is not altered (a model's files are hashed in "
                           "the promotion ledger): retrain and stop that version" for path in found.holding]  # fmt: skip
    files = _regular_files(logs)
    searchable = len(customer_id) >= MIN_SCRUB_LENGTH
    sweep.removed["service_log_files_scrubbed"] = _scrub_files(files, needles) if searchable else 0
    sweep.searched["the service's log files (BENTOML_HOME/logs)"] = {"files": len(files)}


def erase(
    usecase: UseCase | str | None, customer_id: str, airflow_run: tuple[str, str] | None = None
) -> dict[str, Any]:
    """Erase one person from every store of the use case and keep a receipt; a second call is a no-op.

    `airflow_run` (dag_id, run_id): the Airflow run doing the erasure, whose conf is left for its last step
    (`redact_run_conf`). Returns `erased` (False for the no-op), a `message`, the `receipt` path, the counts
    `removed` per store and what was `searched`.
    """
    uc = resolve(usecase)
    customer_id = str(customer_id).strip()
    if not customer_id:
        raise ErasureError("no customer id given")
    if customer_id == ERASED.decode():
        raise ErasureError("this run's id was redacted after its erasure: there is nothing to erase")
    secret = pseudonym_key()
    digest = erasure_hash(uc, customer_id, secret)
    for path, receipt in receipts(uc):
        if receipt.get("erasure_hash") == digest:
            message = (
                f"already erased at {receipt.get('erased_at')} (receipt {path.name}): nothing to do, nothing written"
            )
            log.info("erasure %s: %s", digest[:12], message)
            return {"erased": False, "message": message, "receipt": str(path), "removed": receipt.get("removed", {}),
                    "searched": receipt.get("searched", {})}  # fmt: skip

    subject, at, sweep = pseudonym(customer_id, secret), _now(), Sweep()
    needles = [customer_id, subject]
    person = _person_rows(uc, customer_id)  # read before the raw data loses them
    _erase_stores(uc, sweep, [customer_id], subject, at)
    _erase_files(uc, sweep, needles)
    _search_model_stores(uc, sweep, customer_id, needles, person)
    hashes = erased_hashes(uc)  # this erasure's own receipt is not written yet: its id is one of the needles
    airflow, more = scrub_airflow_metadata(
        needles, airflow_run, lambda value: erasure_hash(uc, value, secret) in hashes
    )
    sweep.removed["airflow_metadata"] = {k: v for k, v in airflow.items() if k.endswith("_redacted")}
    sweep.searched["Airflow's metadata DB (every text column)"] = airflow
    sweep.warnings += more
    receipt = {
        "usecase": uc.name,
        "erasure_hash": digest,
        "hash": "HMAC-SHA256 under the pseudonymisation key of a domain-separated string of the id",
        "erased_at": at,
        "searched_for": "the id and its pseudonym (as whole tokens, in files and Airflow's DB), the person's rows "
        "(by id in the data, by pseudonym in frames and records) and their model inputs (in input examples)",
        "removed": sweep.removed,
        "searched": sweep.searched,
        "warnings": sweep.warnings,
        "kept": KEPT + ([f"the conf of the Airflow run {airflow_run[1]}: redacted by its last step"] if airflow_run else []),
    }  # fmt: skip
    return _write_receipt(uc, receipt, digest)


def _write_receipt(uc: UseCase, receipt: dict[str, Any], digest: str) -> dict[str, Any]:
    stamp = receipt["erased_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    path = receipts_dir(uc) / f"{stamp}_{digest[:16]}.json"
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(receipt, indent=2)))
    removed = receipt["removed"]
    log.info("erasure %s: removed %s; receipt %s", digest[:12], removed, path)
    message = f"erased; receipt {path.name}"
    if not _total({k: v for k, v in removed.items() if k != "airflow_metadata"}):
        message = f"no data held for this id; receipt {path.name} (ingestion will leave the id out from now on)"
    return {"erased": True, "message": message, "receipt": str(path), "removed": removed,
            "searched": receipt["searched"], "warnings": receipt["warnings"]}  # fmt: skip


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

    Records about a person (batch prediction partitions, decision-log rows, reviews of decisions, the online
    store's rows) follow the entity's `retention_months`: a month's prediction partition is deleted once the whole
    month lies more than that many months before the end of `as_of_month`; decision rows by `recorded_at`,
    reviews by `reviewed_at` (a review outlives its decision by the time between them), online rows by their
    event time. Raw snapshots and labels, offline partitions and the rows of stored training frames are personal data
    too and follow the same rule, each with the shortest retention among the entity and the personal-data
    features it holds (a file cannot be kept longer than any of its columns may be; deleting earlier is allowed,
    keeping longer is not). With the default config every period is 84 months, far beyond the training window,
    the drift reference and the views' TTLs, so nothing the pipelines still read is deleted; a much shorter
    retention would shorten what training and point-in-time lookups can see, which is its purpose.

    Temporary files of interrupted writes (`fairway.data.temp_leftovers`) anywhere under FAIRWAY_HOME are
    removed once they are older than STALE_TEMP_SECONDS (a day: no write in flight is that old).

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
    counts["review_rows"] = _delete_reviews(uc, before=entity_cutoff.to_pydatetime())

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
    # what a killed writer left: a partial copy of whatever it was writing, personal data included
    counts["temporary_files_removed"] = _remove(temp_leftovers(home.home, STALE_TEMP_SECONDS))
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
