"""Human intervention in single decisions (GDPR Art. 22(3)) and the explanation of a decision to the person it
concerns (AI Act Art. 86).

A decision is found by its request id:
- an online decision: the `request_id` of its row in the decision log (the service's answer carries it);
- a batch decision: `batch-<YYYY-MM>-<subject>`, the month of the prediction partition and the record's
  pseudonymised subject (`batch_request_id`, or `request_id_of_customer` from the customer id and the month).

A review is a person's override of a decision, or the outcome of a contest by the person concerned: the decision
it sets (approve or decline), who decided, why, and when. Reviews are rows of their own table
(`fairway_reviews`) in the decision log's database, appended and never changed; the decision's own record is
never touched. The effective decision is the latest review's, else the model's.

Erasure and retention treat review rows like the decision rows they belong to (`delete_reviews`, by the
subject's pseudonym or by age).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from fairway.config import UseCase, resolve
from fairway.records import DecisionLog, create_tables, decision_log_url, prediction_partition, pseudonym

KINDS = ("override", "contest")
DECISIONS = ("approve", "decline")
BATCH_ID = re.compile(r"batch-(\d{4}-\d{2})-([0-9a-f]{32})")
REVIEW_TABLE = "fairway_reviews"
MAX_BY, MAX_REASON = 200, 5000


class UnknownDecision(LookupError):
    """No decision of this use case has that request id."""


class InvalidReview(ValueError):
    """A review that cannot be recorded: empty reviewer or reason, an unknown decision or kind."""


@dataclass(frozen=True)
class Decision:
    """One decision as its record holds it (online decision log or batch prediction partition)."""

    request_id: str
    source: str  # online | batch
    endpoint: str
    subject: str | None
    decided_at: datetime | None
    month: str | None
    score: float
    threshold: float
    decision: str
    model_name: str
    model_version: str
    features_stale: bool | None
    reasons: list[dict[str, Any]] = field(default_factory=list)


def batch_request_id(month: str, subject: str) -> str:
    """The request id of a batch decision: its month and its record's subject."""
    return f"batch-{month}-{subject}"


def request_id_of_customer(usecase: UseCase | str | None, customer_id: str, month: str) -> str:
    """The request id of a customer's batch decision of a month (the controller holds the pseudonym key)."""
    resolve(usecase)
    return batch_request_id(month, pseudonym(customer_id))


# --- finding a decision ------------------------------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    if value is None or (isinstance(value, float) and value != value) or value is pd.NaT:
        return None
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


def _reasons(text: Any) -> list[dict[str, Any]]:
    return list(json.loads(text)) if isinstance(text, str) and text else []


def _online(uc: UseCase, log: DecisionLog, request_id: str) -> Decision | None:
    table = log.table
    with log.engine.connect() as connection:
        row = connection.execute(
            table.select().where(table.c.request_id == request_id, table.c.usecase == uc.name)
        ).mappings().first()  # fmt: skip
    if row is None:
        return None
    return Decision(
        request_id=request_id, source="online", endpoint=str(row["endpoint"]), subject=row["subject"],
        decided_at=_time(row["recorded_at"]), month=None, score=float(row["score"]), threshold=float(row["threshold"]),
        decision=str(row["decision"]), model_name=str(row["model_name"]), model_version=str(row["model_version"]),
        features_stale=row["features_stale"], reasons=_reasons(row["reasons"]),
    )  # fmt: skip


def _batch(uc: UseCase, request_id: str) -> Decision | None:
    matched = BATCH_ID.fullmatch(request_id)
    if matched is None:
        return None
    month, subject = matched.groups()
    path = prediction_partition(uc, month)
    if not path.is_file():
        return None
    rows = pd.read_parquet(path, filters=[("subject", "==", subject)])  # this person's record only
    if rows.empty:
        return None
    row = rows.iloc[0]
    return Decision(
        request_id=request_id, source="batch", endpoint="batch", subject=subject, decided_at=_time(row["interval_end"]),
        month=month, score=float(row["score"]), threshold=float(row["threshold"]), decision=str(row["decision"]),
        model_name=str(row["model_name"]), model_version=str(row["model_version"]), features_stale=None,
        reasons=_reasons(row["reasons"]),
    )  # fmt: skip


def find_decision(usecase: UseCase | str | None, request_id: str, log: DecisionLog | None = None) -> Decision:
    """The decision with this request id; UnknownDecision when there is none (or, impossibly, two)."""
    uc = resolve(usecase)
    request_id = (request_id or "").strip()
    if not request_id or len(request_id) > 64:
        raise UnknownDecision(f"{request_id[:80]!r} is not a request id (1 to 64 characters)")
    found = [d for d in (_online(uc, log or DecisionLog(decision_log_url(uc)), request_id), _batch(uc, request_id))
             if d is not None]  # fmt: skip
    if not found:
        raise UnknownDecision(f"no decision of '{uc.name}' has request id {request_id!r}")
    if len(found) > 1:
        raise UnknownDecision(f"request id {request_id!r} names both an online and a batch decision")
    return found[0]


# --- the review log ----------------------------------------------------------------------------------------


class ReviewLog:
    """Append-only reviews, in the decision log's database (its engine and settings)."""

    def __init__(self, uc: UseCase) -> None:
        import sqlalchemy as sa

        self.uc = uc
        self.decisions = DecisionLog(decision_log_url(uc))
        metadata = sa.MetaData()
        self.table = sa.Table(
            REVIEW_TABLE, metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("request_id", sa.String(64), nullable=False, index=True),
            sa.Column("usecase", sa.String(100), nullable=False),
            sa.Column("source", sa.String(10), nullable=False),
            sa.Column("subject", sa.String(64), nullable=True),  # the decision's pseudonym: erasure finds it
            sa.Column("model_name", sa.String(200), nullable=False),
            sa.Column("model_version", sa.String(20), nullable=False),
            sa.Column("original_decision", sa.String(20), nullable=False),
            sa.Column("kind", sa.String(20), nullable=False),
            sa.Column("decision", sa.String(20), nullable=False),
            sa.Column("reviewer", sa.String(MAX_BY), nullable=False),
            sa.Column("channel", sa.String(40), nullable=False),
            sa.Column("reason", sa.Text, nullable=False),
            sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        )  # fmt: skip
        create_tables(metadata, self.decisions.engine)

    def append(self, row: dict[str, Any]) -> None:
        with self.decisions.engine.begin() as connection:
            connection.execute(self.table.insert().values(**row))

    def of(self, request_id: str) -> list[dict[str, Any]]:
        """The reviews of one decision, oldest first."""
        table = self.table
        query = table.select().where(table.c.request_id == request_id, table.c.usecase == self.uc.name)
        with self.decisions.engine.connect() as connection:
            rows = connection.execute(query.order_by(table.c.id)).mappings().all()
        return [{**row, "reviewed_at": _time(row["reviewed_at"])} for row in rows]

    def delete(self, subject: str | None = None, before: datetime | None = None) -> int:
        """Delete the reviews of a subject (erasure) or older than `before` (retention); rows removed. On SQLite
        with secure_delete and a WAL checkpoint, elsewhere followed by VACUUM of the table: the deleted rows'
        bytes do not stay in the database's files."""
        table = self.table
        where = [table.c.usecase == self.uc.name]
        if subject is not None:
            where.append(table.c.subject == subject)
        if before is not None:
            where.append(table.c.reviewed_at < before)
        if len(where) == 1:
            raise ValueError("delete_reviews needs a subject or a cut-off time")
        engine = self.decisions.engine
        is_sqlite = engine.dialect.name == "sqlite"
        with engine.connect() as connection:
            if is_sqlite:
                connection.exec_driver_sql("PRAGMA secure_delete=ON")
            removed = int(connection.execute(table.delete().where(*where)).rowcount)
            connection.commit()
            if is_sqlite and removed:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        if removed and not is_sqlite:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql(f"VACUUM {REVIEW_TABLE}")
        return removed


def delete_reviews(usecase: UseCase | str | None, subject: str | None = None, before: datetime | None = None) -> int:
    """Reviews of a subject's decisions (erasure, by pseudonym) or older than `before` (retention); the log's
    connections are closed afterwards (erasure checkpoints and compacts the same database files)."""
    reviews = ReviewLog(resolve(usecase))
    try:
        return reviews.delete(subject, before)
    finally:
        reviews.decisions.engine.dispose()


def _checked(decision: str, by: str, reason: str, kind: str) -> tuple[str, str, str, str]:
    """The review's fields, stripped; InvalidReview names every problem."""
    decision, by, reason, kind = (str(v or "").strip() for v in (decision, by, reason, kind))
    problems = []
    if decision not in DECISIONS:
        problems.append(f"decision {decision!r} is not one of {', '.join(DECISIONS)}")
    if kind not in KINDS:
        problems.append(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if not by:
        problems.append("the reviewer (--by) is empty: a review is made by a named person")
    elif len(by) > MAX_BY:
        problems.append(f"the reviewer's name is longer than {MAX_BY} characters")
    if not reason:
        problems.append("the reason (--reason) is empty: say why the decision stands or changes")
    elif len(reason) > MAX_REASON:
        problems.append(f"the reason is longer than {MAX_REASON} characters")
    if problems:
        raise InvalidReview("; ".join(problems))
    return decision, by, reason, kind


def effective_decision(decision: Decision, reviews: list[dict[str, Any]]) -> str:
    """The latest review's decision, else the model's."""
    return str(reviews[-1]["decision"]) if reviews else decision.decision


def record_review(
    usecase: UseCase | str | None, request_id: str, decision: str, by: str, reason: str, kind: str = "override",
    channel: str = "cli",
) -> dict[str, Any]:  # fmt: skip
    """Record a review of one decision (appended; the decision's record is unchanged); returns the review, the
    decision and the effective decision now."""
    uc = resolve(usecase)
    decision, by, reason, kind = _checked(decision, by, reason, kind)
    log = ReviewLog(uc)
    found = find_decision(uc, request_id, log.decisions)
    row = {"request_id": found.request_id, "usecase": uc.name, "source": found.source, "subject": found.subject,
           "model_name": found.model_name, "model_version": found.model_version,
           "original_decision": found.decision, "kind": kind, "decision": decision, "reviewer": by,
           "channel": channel, "reason": reason, "reviewed_at": datetime.now(UTC)}  # fmt: skip
    log.append(row)
    reviews = log.of(found.request_id)
    return {"review": reviews[-1], "decision": found, "reviews": reviews,
            "effective_decision": effective_decision(found, reviews)}  # fmt: skip


def decision_with_reviews(usecase: UseCase | str | None, request_id: str) -> tuple[Decision, list[dict[str, Any]]]:
    uc = resolve(usecase)
    log = ReviewLog(uc)
    found = find_decision(uc, request_id, log.decisions)
    return found, log.of(found.request_id)


# --- the explanation for the person (AI Act Art. 86) -------------------------------------------------------

PROVIDER = "**To be completed by the provider:**"


def _value(value: Any) -> str:
    if value is None:
        return "missing (not known to us)"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _describe(uc: UseCase, name: str) -> str:
    try:
        return f"{name} ({uc.feature(name).description.rstrip('.')})"
    except KeyError:
        return name


def _when(decision: Decision) -> str:
    if decision.source == "batch":
        return f"in the monthly assessment of {decision.month}"
    stamp = decision.decided_at.strftime("%Y-%m-%d %H:%M UTC") if decision.decided_at else "an unrecorded time"
    return f"on {stamp}"


def _decision_section(uc: UseCase, decision: Decision, reviews: list[dict[str, Any]]) -> list[str]:
    effective = effective_decision(decision, reviews)
    lines = [
        "## The decision", "",
        f"- Decision reference: `{decision.request_id}`",
        f"- Made {_when(decision)} by an automated system: the model `{decision.model_name}`, version "
        f"{decision.model_version}.",
        f"- The model's decision: **{decision.decision}**.",
        f"- The decision that applies now: **{effective}**"
        + (" (after a review by a person, see below)." if reviews else "."),
        "",
        f"The model gives a score between 0 and 1, its estimate of the risk described above. Yours is "
        f"{decision.score:.3f}; a score below {decision.threshold:.3f} is approved, one at or above it is declined.",
    ]  # fmt: skip
    if decision.features_stale:
        lines += ["", "The information the model used about you was older than we normally accept; a person can "
                      "review the decision with current information."]  # fmt: skip
    return lines


def _reasons_section(uc: UseCase, decision: Decision) -> list[str]:
    lines = ["", "## The main reasons", ""]
    if not decision.reasons:
        return lines + ["None of your information raised the model's estimate above that of a typical applicant."]
    lines += ["Each reason is information about you that raised the estimate compared with a typical applicant (the "
              "middle value, or the most common one, among the people this model version was trained on), largest "
              "first:", ""]  # fmt: skip
    for i, reason in enumerate(decision.reasons, 1):
        name = str(reason["feature"])
        lines.append(
            f"{i}. {_describe(uc, name)}: yours is {_value(reason.get('value'))}, a typical applicant's is "
            f"{_value(reason.get('reference'))}. This raised the estimate by "
            f"{100 * float(reason['effect']):.1f} percentage points."
        )
    return lines


def _not_used_section(uc: UseCase) -> list[str]:
    used = ", ".join(uc.model_inputs)
    protected = ", ".join(uc.protected_features)
    return ["", "## What the model uses, and what it does not", "",
            f"The model uses only this information: {used}. It does not use {protected}: these are kept apart and "
            "used only to check that the model treats groups of people fairly."]  # fmt: skip


def _reviews_section(reviews: list[dict[str, Any]]) -> list[str]:
    lines = ["", "## Reviews by a person", ""]
    if not reviews:
        return lines + ["No person has reviewed this decision yet."]
    for review in reviews:
        what = "contested by you, and decided" if review["kind"] == "contest" else "reviewed and decided"
        stamp = review["reviewed_at"].strftime("%Y-%m-%d %H:%M UTC") if review["reviewed_at"] else ""
        lines.append(f"- {stamp}: {what} **{review['decision']}** by a reviewer. Reason: {review['reason']}")
    return lines


def _rights_section(decision: Decision) -> list[str]:
    return ["", "## What you can do", "",
            "- You can ask for this decision to be reviewed by a person, give your point of view and contest it. A "
            f"reviewer then decides again and records the outcome with this reference (`{decision.request_id}`).",
            "- You can ask which information about you we hold, and have it corrected if it is wrong.",
            f"- How to reach a person: {PROVIDER} the contact (team, address, telephone, e-mail) and the time within "
            "which a request is answered.",
            f"- Further rights and where to complain: {PROVIDER} the data protection officer's contact and the "
            "supervisory authority."]  # fmt: skip


def explanation(usecase: UseCase | str | None, request_id: str) -> str:
    """A plain-language explanation of one decision for the person it concerns (Markdown): the decision, the model
    version, the date, the main reasons from its reason codes, what the model does not use, what the person can
    do, and any review. Only this decision's record and the use-case config are read: no other person's data."""
    uc = resolve(usecase)
    decision, reviews = decision_with_reviews(uc, request_id)
    lines = [f"# Explanation of a decision: {uc.name.replace('_', ' ')}", "", uc.description.strip(), ""]
    lines += _decision_section(uc, decision, reviews)
    lines += _reasons_section(uc, decision)
    lines += _not_used_section(uc)
    lines += _reviews_section(reviews)
    lines += _rights_section(decision)
    return "\n".join(lines) + "\n"
