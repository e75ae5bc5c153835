"""Records of decisions (AI Act Art. 12) and the pseudonymisation of the people they concern (GDPR Art. 25).

A subject key is an HMAC-SHA256 of the customer id under a secret key: records can be linked to a person only
by whoever holds the key (the controller, for erasure or access requests), not by a reader of the records.
The key comes from FAIRWAY_PSEUDONYM_KEY, or is created once under FAIRWAY_HOME/secrets (mode 0600).

Batch prediction records: FAIRWAY_HOME/records/<usecase>/predictions/<YYYY-MM>.parquet, one partition per month,
replaced atomically.

Decision records of the online service: one row per answered request in the decision log, a SQL table
(`fairway_decisions`) in SQLite under FAIRWAY_HOME/records/<usecase>/decisions.db by default, or in the database
of FAIRWAY_DECISION_LOG_URL (e.g. postgresql+psycopg2://...). A row is committed before the answer is sent.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from fairway import settings
from fairway.config import UseCase, paths
from fairway.data import to_arrow, write_parquet_atomic

PREDICTION_COLUMNS = [
    "subject", "score", "decision", "threshold", "model_name", "model_version", "feature_service",
    "interval_start", "interval_end", "features_as_of", "input_fingerprint", "reasons", "run_id",
]  # fmt: skip


def pseudonym_key() -> bytes:
    """The pseudonymisation key (FAIRWAY_PSEUDONYM_KEY, else FAIRWAY_HOME/secrets/pseudonym.key, created once)."""
    return settings.secret("pseudonym")


def pseudonymise(ids: pd.Series) -> pd.Series:
    """HMAC-SHA256 (first 32 hex digits) of each id under the pseudonymisation key."""
    key = pseudonym_key()
    return pd.Series([pseudonym(v, key) for v in ids.astype(str).to_numpy()], index=ids.index, dtype=object)


def pseudonym(customer_id: object, key: bytes | None = None) -> str:
    """The pseudonym of one id; pass the key when calling often (the online service reads it once)."""
    return hmac.digest(key or pseudonym_key(), str(customer_id).encode(), "sha256").hex()[:32]


def _fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def input_fingerprint(values: list[Any]) -> str:
    """The fingerprint of one row of model inputs, given in the model's input order (as `input_fingerprints`)."""
    return _fingerprint("\x1f".join(map(str, values)))


def input_fingerprints(inputs: pd.DataFrame) -> pd.Series:
    """SHA-256 (first 32 hex digits) of each row's model inputs, in column order: ties a decision to its inputs."""
    text = inputs.astype(str)
    columns = [text[column].tolist() for column in text.columns]  # joined per row in one pass, no column sums
    sha256 = hashlib.sha256
    prints = [sha256("\x1f".join(row).encode()).hexdigest()[:32] for row in zip(*columns, strict=True)]
    return pd.Series(prints, index=inputs.index, dtype=object)


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


# --- the online decision log ------------------------------------------------------------------------------

DECISION_COLUMNS = [
    "request_id", "recorded_at", "usecase", "endpoint", "subject", "input_fingerprint", "score", "decision",
    "threshold", "model_name", "model_version", "features_event_time", "features_stale", "reasons",
]  # fmt: skip


def decision_log_url(uc: UseCase) -> str:
    """FAIRWAY_DECISION_LOG_URL (any SQLAlchemy URL), else SQLite under FAIRWAY_HOME/records/<usecase>."""
    url = settings.env("FAIRWAY_DECISION_LOG_URL")
    if url:
        return url
    path = paths().records / uc.name / "decisions.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def create_tables(metadata: Any, engine: Any) -> None:
    """`metadata.create_all` that tolerates a concurrent creator: several service workers (or replicas) opening
    a new log at once each see no table, and all but one CREATE fails with "already exists". That is success
    when every table is then there; any other failure is raised."""
    import sqlalchemy as sa

    try:
        metadata.create_all(engine, checkfirst=True)
    except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
        present = set(sa.inspect(engine).get_table_names())
        if not set(metadata.tables) <= present:
            raise


class DecisionLog:
    """Append-only decision records. `append` returns only once the row is committed, and raises otherwise:
    a caller that cannot record a decision must not report it as made."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self.url = url
        is_sqlite = url.startswith("sqlite")
        self.engine = sa.create_engine(url, connect_args={"timeout": 30} if is_sqlite else {}, pool_pre_ping=True)
        if is_sqlite:

            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(connection: Any, _: Any) -> None:
                cursor = connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.close()

        metadata = sa.MetaData()
        self.table = sa.Table(
            "fairway_decisions", metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("request_id", sa.String(64), nullable=False, unique=True),
            sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("usecase", sa.String(100), nullable=False),
            sa.Column("endpoint", sa.String(40), nullable=False),
            sa.Column("subject", sa.String(64), nullable=True),
            sa.Column("input_fingerprint", sa.String(64), nullable=False),
            sa.Column("score", sa.Float, nullable=False),
            sa.Column("decision", sa.String(20), nullable=False),
            sa.Column("threshold", sa.Float, nullable=False),
            sa.Column("model_name", sa.String(200), nullable=False),
            sa.Column("model_version", sa.String(20), nullable=False),
            sa.Column("features_event_time", sa.DateTime(timezone=True), nullable=True),
            sa.Column("features_stale", sa.Boolean, nullable=True),
            sa.Column("reasons", sa.Text, nullable=True),  # JSON: fairway.explanations reason codes
        )  # fmt: skip
        create_tables(metadata, self.engine)

        self._insert = self._compiled_insert()

    def _compiled_insert(self) -> tuple[str, list[str], list[Any], bool]:
        """The INSERT of every decision column compiled once for the engine's dialect: its SQL text, the order of
        its parameters, each column's bind processor (how SQLAlchemy would convert the value, e.g. a datetime to
        SQLite's text form) and whether the driver takes positional parameters. Building and compiling the
        statement per request cost ~0.25 ms; `append` converts the values and executes the text on the pool's DBAPI
        connection (SQLAlchemy's Connection and transaction objects cost another ~0.1 ms)."""
        dialect = self.engine.dialect
        compiled = self.table.insert().compile(dialect=dialect, column_keys=DECISION_COLUMNS)
        positional = bool(compiled.positional)
        order = list(compiled.positiontup or []) if positional else list(compiled.params)
        if sorted(order) != sorted(DECISION_COLUMNS):
            raise RuntimeError(f"the compiled decision insert binds {order}, not the decision columns")
        processors = [self.table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in order]
        return str(compiled), order, processors, positional

    def append(self, record: dict[str, Any]) -> None:
        import sqlalchemy as sa

        row = {k: record.get(k) for k in DECISION_COLUMNS}
        row["recorded_at"] = row["recorded_at"] or datetime.now(UTC)
        sql, order, processors, positional = self._insert
        values = [row[k] if p is None or row[k] is None else p(row[k]) for k, p in zip(order, processors, strict=True)]
        params: Any = tuple(values) if positional else dict(zip(order, values, strict=True))
        # the pool's DBAPI connection (pre-pinged, with the engine's connect events): execute, commit, and return
        # it to the pool, which rolls back whatever did not commit
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(sql, params)
            finally:
                cursor.close()
            connection.commit()
        except dbapi_error as error:  # raised as SQLAlchemy raises it (e.g. IntegrityError for a duplicate)
            raise sa.exc.DBAPIError.instance(sql, params, error, dbapi_error) from error
        finally:
            connection.close()

    def read(self) -> pd.DataFrame:
        with self.engine.connect() as connection:
            return pd.read_sql(self.table.select().order_by(self.table.c.id), connection)
