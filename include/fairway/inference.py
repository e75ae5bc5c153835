"""Monthly batch inference with the champion pinned for the run.

The customers of a month are those with a snapshot in it; their model inputs come from the same feature
service as training, point in time as of the end of the month. Scores, decisions and the model version are
written as the month's prediction records, atomically: a month is either fully written or untouched. Each
record carries its reason codes (fairway.explanations) against the version's reference applicant.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from fairway.config import UseCase, month_str, resolve
from fairway.data import month_bounds

log = logging.getLogger(__name__)


class ScoringError(RuntimeError):
    """A month cannot be scored (no champion, no features, incomplete features); nothing was written."""


def pin_champion(usecase: UseCase | str | None) -> dict[str, str]:
    """The promotion ledger's champion now, checked (fairway.verification.scoring_champion): the run scores every
    customer with this version, loaded from files that hash to the ledger's record."""
    from fairway.verification import ChampionRefused, scoring_champion

    try:
        return scoring_champion(usecase)
    except ChampionRefused as error:
        raise ScoringError(str(error)) from None


def month_customers(uc: UseCase, month: str) -> pd.DataFrame:
    """Entity rows: every customer with a snapshot in the month, as of the end of the month."""
    from fairway.features.store import offline_partition

    view = uc.feature(uc.model_inputs[0]).view
    path = offline_partition(uc, view, month)
    if not path.is_file():
        raise ScoringError(f"no features for {month} ({path} is missing): run feature_pipeline for that month first")
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    keys = pc.unique(pq.read_table(path, columns=[uc.entity.join_key]).column(0))
    keys = keys.take(pc.sort_indices(keys)).to_pandas()  # Arrow's unique and sort: 1M ids in 0.2 s, not 1.2
    as_of = month_bounds(month)[1] - timedelta(microseconds=1)
    return pd.DataFrame({uc.entity.join_key: keys.to_numpy(), uc.event_timestamp: as_of})


def month_inputs(uc: UseCase, month: str, entity_rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """The month's customers (`entity_rows`: `month_customers`, when already read) with their model inputs as of
    the end of the month, in that order (what the month is scored on).

    Refused (ScoringError, nothing scored) when a customer has no features in a view of the model inputs, or
    lacks an input that is not `nullable`; a missing nullable input is NaN and goes to the model, whose pipeline
    imputes it, as in training."""
    from fairway.features.retrieval import historical_features, rows_found
    from fairway.features.store import get_store

    entity_rows = month_customers(uc, month) if entity_rows is None else entity_rows
    frame = historical_features(get_store(uc), uc, entity_rows, uc.service("model_input").name)
    required = [c for c in uc.model_inputs if not uc.feature(c).nullable]
    absent = ~rows_found(uc, entity_rows, uc.model_inputs, frame).to_numpy()
    lacking = frame[required].isna().to_numpy()
    incomplete = absent | lacking.any(axis=1)
    if incomplete.any():
        keys = frame[uc.entity.join_key].astype(str)
        examples = ", ".join(keys[incomplete].head(5))
        named = sorted({required[j] for j in np.flatnonzero(lacking[~absent].any(axis=0))})
        what = f"non-nullable inputs {named}" if named else "features"
        raise ScoringError(f"{month}: {int(incomplete.sum())} customers lack model inputs as of the month's end "
                           f"(e.g. {examples}; no snapshot, or missing {what})")  # fmt: skip
    return frame


def as_given(uc: UseCase, inputs: pd.DataFrame) -> pd.DataFrame:
    """Model inputs as a person or the online store gives them: a missing value is None, an int input's values are
    ints (retrieval gives float64 to an int column with a missing value). What a decision record fingerprints, so
    that the same inputs have the same fingerprint in batch and online records."""
    from fairway.records import as_given_frame

    return as_given_frame(inputs, integer_inputs(uc, inputs))


def integer_inputs(uc: UseCase, inputs: pd.DataFrame) -> list[str]:
    return [c for c in inputs.columns if uc.feature(c).dtype == "int"]


def score_month(usecase: UseCase | str | None, month: str, pinned: dict[str, str], run_id: str) -> dict[str, Any]:
    """Score the month's customers with the pinned version and replace the month's prediction records. The energy
    of the month's scoring (fairway.energy, one tracker) is in the summary and, when tracked, in the month's
    MLflow run of `fairway-<usecase>-batch`."""
    from fairway import energy, registry

    uc = resolve(usecase)
    month = month_str(month)
    with energy.tracked(uc.energy, f"batch month {month}") as used:
        summary = _score_month(uc, month, pinned, run_id)
    if used.status == "disabled":
        return summary
    counts = {"rows_scored": float(summary["rows"]), "rows_declined": float(summary["declined"])}
    tags = {"model_version": pinned["version"], "airflow_run_id": run_id, **used.tags()}
    batch_run = registry.log_batch_month(uc, month, {**counts, **used.metrics()}, tags)
    return {**summary, **used.summary(), "energy_run_id": batch_run}


def _score_month(uc: UseCase, month: str, pinned: dict[str, str], run_id: str) -> dict[str, Any]:
    from fairway.fairness import approvals
    from fairway.records import write_predictions

    frame, scores, columns = _scored_month(uc, month, pinned)
    approved = approvals(uc, scores) == 1
    path = write_predictions(uc, month, _month_records(uc, month, pinned, run_id, frame, approved, columns))
    declined = int(np.count_nonzero(~approved))
    log.info("%s: %d customers scored with %s v%s, %d declined", month, len(frame), pinned["model"],
             pinned["version"], declined)  # fmt: skip
    return {"month": month, "rows": len(frame), "declined": declined, "path": str(path), **pinned}


def _scored_month(uc: UseCase, month: str, pinned: dict[str, str]) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """The month's inputs, their scores, and the records' columns made of them as Arrow arrays: subject
    (pseudonyms), score, input_fingerprint (of the inputs as `as_given` gives them), reasons (JSON)."""
    from fairway.records import input_fingerprint_array, pseudonym_array

    key = uc.entity.join_key
    entity_rows = month_customers(uc, month)
    # the hashes (DuckDB, polars, Arrow: mostly outside the GIL) run on the second core: the pseudonyms while Feast
    # retrieves the features, the input fingerprints while this thread scores and explains
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fairway-hashes") as hashing:
        subjects = hashing.submit(pseudonym_array, entity_rows[key])
        frame = month_inputs(uc, month, entity_rows)
        codes = _reason_codes(uc, pinned)
        inputs = frame[uc.model_inputs]
        prints = hashing.submit(input_fingerprint_array, inputs, integer_inputs(uc, inputs))
        scores, reasons = codes.frame_scores_reasons_json(inputs)
        columns = {"subject": subjects.result(), "score": scores, "input_fingerprint": prints.result(),
                   "reasons": reasons}  # fmt: skip
    if not frame[key].reset_index(drop=True).equals(entity_rows[key].reset_index(drop=True)):
        raise RuntimeError(f"{month}: feature retrieval did not keep the customers' order")  # historical_features does
    return frame, scores, columns


def _month_records(uc: UseCase, month: str, pinned: dict[str, str], run_id: str, frame: pd.DataFrame,
                   approved: np.ndarray, columns: dict[str, Any]) -> pa.Table:  # fmt: skip
    """The month's prediction records (fairway.records.prediction_table): the scored columns, the decisions and
    what every record of the month shares."""
    import pyarrow.compute as pc

    from fairway.records import prediction_table

    start, end = month_bounds(month)
    constants = {
        "threshold": uc.gate.decision_threshold,
        "model_name": pinned["model"],
        "model_version": pinned["version"],
        "feature_service": uc.service("model_input").name,
        "interval_start": start,
        "interval_end": end,
        "features_as_of": frame[uc.event_timestamp].iloc[0],
        "run_id": run_id,
    }
    decisions = pc.if_else(pa.array(approved), "approve", "decline")
    return prediction_table(constants, {**columns, "decision": decisions}, len(frame))


def _reason_codes(uc: UseCase, pinned: dict[str, str]) -> Any:
    """The pinned version's fairway.explanations.ReasonCodes (ScoringError when the version may not score)."""
    from fairway import explanations, verification
    from fairway.training import load_reference, predict_scores

    try:
        verification.still_allowed(uc, pinned)  # a stop between pinning and scoring counts
        model = verification.load_scoring_model(uc, pinned)
    except verification.ChampionRefused as error:
        raise ScoringError(str(error)) from None
    scorer = lambda rows: predict_scores(model, rows)  # noqa: E731
    return explanations.ReasonCodes(uc.model_inputs, load_reference(pinned["run_id"]), scorer, model=model)

