"""The promotion ledger: the source of truth for which model version may score.

MLflow has no authentication in most deployments: anyone who reaches it can move an alias or write a tag.
So every gate decision, approval, rejection, promotion, documentation, stop and rollback is an entry of an
append-only ledger in a SQL table (`fairway_ledger`; SQLite under FAIRWAY_HOME/records by default,
PostgreSQL in the stack: fairway.settings.ledger_url). Each entry

- carries its evidence in `payload` (canonical JSON: model files' SHA-256, the training frame's fingerprint,
  the gate report's SHA-256, the code revision, the approver, the reason ...),
- is chained: `entry_hash` = SHA-256 over the entry's fields and the previous entry's hash,
- is signed: `signature` = HMAC-SHA256 of `entry_hash` under the deployment's ledger key
  (FAIRWAY_LEDGER_KEY), which MLflow clients do not hold.

Editing, reordering or inserting a row breaks a hash, a link or a signature; `verify_chain` names each. The
champion of a model is what the ledger's entries say, replayed in order (`state`); the MLflow alias mirrors it.
Deleting entries from the end cannot be seen from the chain alone: `head` gives the latest hash to anchor
elsewhere (a ticket, a signed e-mail) when that matters.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import sqlalchemy as sa

from fairway import settings

log = logging.getLogger(__name__)

GATE = "gate"
APPROVAL = "approval"
PROMOTION = "promotion"
DOCUMENTATION = "documentation"
STOP = "stop"
ROLLBACK = "rollback"
ACTIONS = (GATE, APPROVAL, PROMOTION, DOCUMENTATION, STOP, ROLLBACK)
GENESIS = "0" * 64

_METADATA = sa.MetaData()
TABLE = sa.Table(
    "fairway_ledger", _METADATA,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("recorded_at", sa.String(40), nullable=False),
    sa.Column("usecase", sa.String(100), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("version", sa.String(20), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("signature", sa.String(64), nullable=False),
)  # fmt: skip


class LedgerError(RuntimeError):
    """The ledger cannot be trusted (broken chain, bad signature) or refuses an entry."""


@dataclass(frozen=True)
class Entry:
    seq: int
    recorded_at: str
    usecase: str
    model_name: str
    version: str
    action: str
    actor: str
    payload: dict[str, Any]
    prev_hash: str
    entry_hash: str
    signature: str

    def describe(self) -> str:
        return f"#{self.seq} {self.action} {self.model_name} v{self.version} by {self.actor} at {self.recorded_at}"


@dataclass(frozen=True)
class ChampionState:
    """A model's champion as the ledger says: the version, the entry that made it champion, and the stop entry
    when it was stopped since."""

    model_name: str
    version: str | None = None
    since: Entry | None = None
    stopped: Entry | None = None
    approved_versions: dict[str, Entry] = field(default_factory=dict)  # version -> its latest promotion/rollback

    @property
    def serving(self) -> str | None:
        """The version that may score now (None: no champion, or stopped)."""
        return None if self.stopped is not None else self.version

    def stop_reason(self) -> str:
        if self.stopped is None:
            return ""
        reason = self.stopped.payload.get("reason", "")
        return f"model stopped by {self.stopped.actor} at {self.stopped.recorded_at}: {reason}"


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _hash(fields: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(fields).encode()).hexdigest()


def _sign(entry_hash: str, key: bytes) -> str:
    return hmac.new(key, entry_hash.encode(), "sha256").hexdigest()


def _hashed_fields(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("seq", "recorded_at", "usecase", "model_name", "version", "action", "actor", "payload", "prev_hash")
    return {k: row[k] for k in keys}


@cache
def _engine(url: str) -> sa.Engine:
    is_sqlite = url.startswith("sqlite")
    engine = sa.create_engine(url, connect_args={"timeout": 30} if is_sqlite else {}, pool_pre_ping=True)
    if is_sqlite:

        @sa.event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

    try:
        _METADATA.create_all(engine, checkfirst=True)
    except sa.exc.DatabaseError:  # another process created the table between the check and the CREATE
        if not sa.inspect(engine).has_table(TABLE.name):
            raise
    return engine


def engine() -> sa.Engine:
    """The ledger's database (fairway.settings.ledger_url), its table created on first use."""
    return _engine(settings.ledger_url())


def _to_entry(row: Any) -> Entry:
    data = dict(row._mapping)
    return Entry(**{**data, "payload": json.loads(data["payload"])})


def entries(model_name: str | None = None, after: int = 0) -> list[Entry]:
    """Entries in order (of one model, when named; from sequence number `after` + 1)."""
    query = sa.select(TABLE).where(TABLE.c.seq > after).order_by(TABLE.c.seq)
    if model_name is not None:
        query = query.where(TABLE.c.model_name == model_name)
    with engine().connect() as connection:
        return [_to_entry(row) for row in connection.execute(query)]


def head() -> tuple[int, str]:
    """The latest sequence number and entry hash (0 and the genesis hash for an empty ledger)."""
    with engine().connect() as connection:
        row = connection.execute(
            sa.select(TABLE.c.seq, TABLE.c.entry_hash).order_by(TABLE.c.seq.desc()).limit(1)
        ).first()
    return (0, GENESIS) if row is None else (int(row.seq), str(row.entry_hash))


def append(usecase: str, model_name: str, version: str, action: str, actor: str, payload: dict[str, Any]) -> Entry:
    """Append one signed, chained entry; returns it once committed. Concurrent writers retry on the sequence
    number (the primary key: two entries can never share a place in the chain)."""
    if action not in ACTIONS:
        raise LedgerError(f"unknown ledger action {action!r}")
    if not actor.strip():
        raise LedgerError("a ledger entry needs an actor")
    key = settings.secret("ledger")
    payload = json.loads(canonical(payload))  # what is hashed is what is stored and read back
    for attempt in range(50):
        seq, prev_hash = head()
        row: dict[str, Any] = {"seq": seq + 1, "recorded_at": datetime.now(UTC).isoformat(timespec="microseconds"),
               "usecase": usecase, "model_name": model_name, "version": str(version), "action": action,
               "actor": actor, "payload": payload, "prev_hash": prev_hash}  # fmt: skip
        row["entry_hash"] = _hash(row)
        row["signature"] = _sign(row["entry_hash"], key)
        try:
            with engine().begin() as connection:
                connection.execute(TABLE.insert().values(**{**row, "payload": canonical(payload)}))
        except (sa.exc.IntegrityError, sa.exc.OperationalError) as error:  # another writer took seq + 1
            log.info("ledger append raced (attempt %d): %s", attempt + 1, type(error).__name__)
            time.sleep(0.05 * (attempt + 1))
            continue
        entry = Entry(**row)
        log.info("ledger %s", entry.describe())
        return entry
    raise LedgerError("could not append to the ledger: too many concurrent writers")


def verify_chain(found: list[Entry] | None = None) -> list[str]:
    """Every problem of the whole chain: a gap in the sequence, a broken link, an entry whose hash does not match
    its fields, a signature that is not the deployment key's. Empty: the chain holds."""
    key = settings.secret("ledger")
    problems: list[str] = []
    expected_prev, expected_seq = GENESIS, 1
    for entry in entries() if found is None else found:
        if entry.seq != expected_seq:
            problems.append(f"#{entry.seq}: expected entry #{expected_seq} (entries missing or inserted)")
        if entry.prev_hash != expected_prev:
            problems.append(f"#{entry.seq}: does not link to the entry before it (prev_hash differs)")
        fields = _hashed_fields(entry.__dict__)
        if _hash(fields) != entry.entry_hash:
            problems.append(f"#{entry.seq}: its fields were changed after it was written ({entry.describe()})")
        if not hmac.compare_digest(_sign(entry.entry_hash, key), entry.signature):
            problems.append(f"#{entry.seq}: signature is not the deployment's (forged or another key)")
        expected_prev, expected_seq = entry.entry_hash, entry.seq + 1
    return problems


def replay(model_name: str, found: list[Entry]) -> ChampionState:
    """A model's champion after the given entries (of any models; in ledger order)."""
    state = ChampionState(model_name)
    approved = dict(state.approved_versions)
    for entry in found:
        if entry.model_name != model_name:
            continue
        if entry.action in (PROMOTION, ROLLBACK):
            approved[entry.version] = entry
            state = ChampionState(model_name, entry.version, entry, None, approved)
        elif entry.action == STOP and state.version is not None:
            state = ChampionState(model_name, state.version, state.since, entry, approved)
    return ChampionState(model_name, state.version, state.since, state.stopped, approved)


def verified_entries() -> list[Entry]:
    """Every entry, once the whole chain verifies (LedgerError naming the problems otherwise)."""
    found = entries()
    problems = verify_chain(found)
    if problems:
        raise LedgerError("the promotion ledger does not verify: " + "; ".join(problems[:5]))
    return found


def state(model_name: str) -> ChampionState:
    """The model's champion now, from a verified chain (LedgerError naming the problems otherwise)."""
    return replay(model_name, verified_entries())


def latest(model_name: str, version: str, action: str, found: list[Entry] | None = None) -> Entry | None:
    """The latest entry of an action for a version."""
    matches = [
        e for e in (entries(model_name) if found is None else found)
        if e.model_name == model_name and e.version == str(version) and e.action == action
    ]  # fmt: skip
    return matches[-1] if matches else None
