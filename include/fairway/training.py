"""Training: the point-in-time training frame, the candidates (baseline and bias-mitigated) and their evaluation.

The frame holds one row per labelled snapshot whose label was known at the end of the window: the snapshot's
model inputs (`model_input` service) and protected attributes (`fairness_audit` service, for evaluation only),
both as of the snapshot time, and the label. The latest snapshot month is the holdout.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from fairway.config import UseCase, month_str, paths, resolve
from fairway.data import month_bounds, months, months_between, to_arrow, write_parquet_atomic
from fairway.features.retrieval import historical_features
from fairway.features.store import get_store

log = logging.getLogger(__name__)

MONTH_COLUMN = "_snapshot_month"


@dataclass(frozen=True)
class TrainingWindow:
    """Snapshots of the `length` months before `end`, with the labels known at the end of month `end`."""

    end: str
    length: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "end", month_str(self.end))
        if self.length < 2:
            raise ValueError("a training window needs at least 2 months: earlier ones to train, the latest to hold out")

    @property
    def snapshot_months(self) -> list[str]:
        first = str(pd.Period(self.end, freq="M") - self.length)
        return months(first, self.length)

    @property
    def holdout_month(self) -> str:
        return self.snapshot_months[-1]

    @property
    def as_of(self) -> pd.Timestamp:
        """Labels known strictly before this instant (the end of month `end`) are used."""
        return month_bounds(self.end)[1]


def labelled_months(uc: UseCase) -> list[str]:
    """Months in which labels were delivered (partitions of the label view that hold rows)."""
    folder = paths().offline_view(uc.name, uc.label_view)
    return sorted(p.stem for p in folder.glob("*.parquet") if pq.ParquetFile(p).metadata.num_rows > 0)


def default_window(uc: UseCase, end: str | None = None, length: int = 6) -> TrainingWindow:
    """The window ending at `end`, or at the latest month with delivered labels; shortened to the data there is."""
    delivered = labelled_months(uc)
    if not delivered:
        raise RuntimeError(f"no labels in the offline store of '{uc.name}': run feature_pipeline first")
    end = month_str(end) if end else delivered[-1]
    available = [m for m in delivered if m <= end]
    return TrainingWindow(end, max(2, min(length, len(available))))


def known_labels(uc: UseCase, snapshot_months: list[str], as_of: pd.Timestamp) -> pd.DataFrame:
    """Labels of the snapshots of `snapshot_months` that were delivered strictly before `as_of`."""
    key, ts, label, known = uc.entity.join_key, uc.event_timestamp, uc.label.feature, uc.label.available_timestamp
    folder = paths().offline_view(uc.name, uc.label_view)
    last = month_str(as_of - pd.Timedelta(microseconds=1))
    files = [folder / f"{m}.parquet" for m in months_between(snapshot_months[0], last)]
    frames = [pd.read_parquet(f, columns=[key, ts, known, label]) for f in files if f.is_file()]
    if not frames:
        raise RuntimeError(
            f"no labels delivered for the snapshots of {snapshot_months[0]}..{snapshot_months[-1]} by {last}"
        )
    labels = pd.concat(frames, ignore_index=True)
    labels = labels[labels[known] < as_of]
    labels[MONTH_COLUMN] = labels[ts].dt.strftime("%Y-%m")
    labels = labels[labels[MONTH_COLUMN].isin(snapshot_months)]
    return labels.sort_values([ts, key]).reset_index(drop=True)


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a frame (values, column names and order), stable across runs and machines."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class FrameSummary:
    """What the training data was: logged with every run (AI Act Art. 10 data governance)."""

    usecase: str
    path: str
    fingerprint: str
    window_end: str
    window_months: list[str]
    holdout_month: str
    rows: int
    train_rows: int
    holdout_rows: int
    dropped_rows: int
    positive_rate: float
    model_feature_service: str
    audit_feature_service: str
    trigger: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_training_frame(
    usecase: UseCase | str | None, end: str | None = None, length: int = 6, trigger: list[str] | None = None
) -> dict[str, Any]:
    """Build the point-in-time frame of a window through Feast and store it; returns its summary (small).
    `trigger`: why the training runs (a retraining request's reasons), kept with the frame's lineage."""
    uc = resolve(usecase)
    window = default_window(uc, end, length)
    labels = known_labels(uc, window.snapshot_months, window.as_of)
    key, ts, label = uc.entity.join_key, uc.event_timestamp, uc.label.feature
    store = get_store(uc)
    model_service, audit_service = uc.service("model_input").name, uc.service("fairness_audit").name
    inputs = historical_features(store, uc, labels[[key, ts]], model_service)
    audit = historical_features(store, uc, labels[[key, ts]], audit_service)
    frame = pd.concat(
        [labels[[key, ts, MONTH_COLUMN, label]], inputs[uc.model_inputs], audit[uc.protected_features]], axis=1
    )
    complete = frame[uc.model_inputs + uc.protected_features].notna().all(axis=1)
    dropped = int((~complete).sum())
    if dropped:
        log.warning("%d labelled snapshots have no features in the store and are left out", dropped)
    frame = frame[complete].reset_index(drop=True)
    holdout = frame[MONTH_COLUMN] == window.holdout_month
    if holdout.all() or not holdout.any():
        raise RuntimeError(
            f"window {window.snapshot_months} gives no train/holdout split (holdout {window.holdout_month})"
        )
    digest = fingerprint(frame)
    path = paths().home / "datasets" / uc.name / f"training_{digest[:16]}.parquet"
    write_parquet_atomic(to_arrow(frame), path)
    summary = FrameSummary(
        usecase=uc.name,
        path=str(path),
        fingerprint=digest,
        window_end=window.end,
        window_months=window.snapshot_months,
        holdout_month=window.holdout_month,
        rows=len(frame),
        train_rows=int((~holdout).sum()),
        holdout_rows=int(holdout.sum()),
        dropped_rows=dropped,
        positive_rate=float((frame[label] == uc.label.positive_value).mean()),
        model_feature_service=model_service,
        audit_feature_service=audit_service,
        trigger=list(trigger or ["manual"]),
    )
    log.info(
        "training frame %s: %d rows (%d holdout) from %s",
        digest[:12],
        len(frame),
        summary.holdout_rows,
        window.snapshot_months,
    )
    return summary.as_dict()


def read_frame(summary: dict[str, Any]) -> pd.DataFrame:
    """The stored frame; refuses a missing file or one whose content changed since it was built, except by the
    removals that erasure and retention record in its ledger (fairway.privacy)."""
    from fairway.privacy import frame_removals

    path = Path(summary["path"])
    if not path.is_file():
        raise RuntimeError(f"training frame {path} is missing (built on another machine, or FAIRWAY_HOME was reset)")
    frame = pd.read_parquet(path)
    now = fingerprint(frame)
    if now != summary["fingerprint"] and frame_removals(path, summary["fingerprint"], now) is None:
        raise RuntimeError(f"training frame {path} changed since it was built (fingerprint mismatch)")
    return frame


def load_frame(summary: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stored frame split into (train, holdout)."""
    frame = read_frame(summary)
    holdout = frame[MONTH_COLUMN] == summary["holdout_month"]
    return frame[~holdout].reset_index(drop=True), frame[holdout].reset_index(drop=True)


def positive_target(uc: UseCase, frame: pd.DataFrame) -> np.ndarray:
    """1 where the label is the adverse outcome the model predicts (e.g. default), else 0."""
    return (frame[uc.label.feature] == uc.label.positive_value).to_numpy(dtype=int)


# --- candidates ----------------------------------------------------------------------------------

CANDIDATES = ("baseline", "reweighing", "exponentiated_gradient")
DESCRIPTIONS = {
    "baseline": ("logistic regression", "none"),
    "reweighing": ("logistic regression", "holisticai Reweighing (training sample weights)"),
    "exponentiated_gradient": ("logistic regression", "holisticai ExponentiatedGradientReduction (demographic parity)"),
}


def preprocessor(uc: UseCase) -> Any:
    """Scale numbers, one-hot encode categories (with the config's categories, unknown ones ignored)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = [f for f in uc.model_inputs if uc.feature(f).dtype in ("string", "bool")]
    numeric = [f for f in uc.model_inputs if f not in categorical]
    categories = [uc.feature(f).allowed or "auto" for f in categorical]
    encoder = OneHotEncoder(
        categories=categories if all(c != "auto" for c in categories) else "auto", handle_unknown="ignore"
    )
    return ColumnTransformer([("numeric", StandardScaler(), numeric), ("categorical", encoder, categorical)])


def mitigation_target(uc: UseCase, train: pd.DataFrame) -> tuple[str, str]:
    """The (attribute, group) whose favourable-label rate is furthest below its reference group's in the
    training labels: the group the mitigated candidates protect."""
    from fairway.fairness import group_mask

    favourable = (train[uc.label.feature] == uc.label.favourable_value).to_numpy()
    worst: tuple[float, str, str] | None = None
    for attr in uc.protected_attributes:
        reference = group_mask(train, attr.feature, attr.groups[attr.reference])
        for group, spec in attr.groups.items():
            mask = group_mask(train, attr.feature, spec)
            if group == attr.reference or not mask.any() or not reference.any():
                continue
            ratio = favourable[mask].mean() / max(favourable[reference].mean(), 1e-9)
            if worst is None or ratio < worst[0]:
                worst = (float(ratio), attr.feature, group)
    if worst is None:
        raise RuntimeError("no protected group can be measured in the training data")
    return worst[1], worst[2]


def fit_candidate(uc: UseCase, name: str, train: pd.DataFrame) -> tuple[Any, dict[str, Any]]:
    """Fit one candidate; protected attributes are used at fit time only, never as model inputs."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from fairway.fairness import group_mask

    x, y = train[uc.model_inputs], positive_target(uc, train)
    algorithm, mitigation = DESCRIPTIONS[name]
    params: dict[str, Any] = {
        "candidate": name,
        "algorithm": algorithm,
        "mitigation": mitigation,
        "train_rows": len(train),
    }
    logistic = LogisticRegression(max_iter=2000, C=1.0)
    if name == "baseline":
        model = Pipeline([("prep", preprocessor(uc)), ("clf", logistic)]).fit(x, y)
        return model, params
    attribute, group = mitigation_target(uc, train)
    spec = next(a for a in uc.protected_attributes if a.feature == attribute).groups[group]
    group_a = group_mask(train, attribute, spec)
    params.update(mitigated_attribute=attribute, mitigated_group=group)
    if name == "reweighing":
        from holisticai.bias.mitigation import Reweighing

        weights = Reweighing().fit(y, group_a, ~group_a).sample_weight
        model = Pipeline([("prep", preprocessor(uc)), ("clf", logistic)]).fit(x, y, clf__sample_weight=weights)
        return model, params
    if name == "exponentiated_gradient":
        from holisticai.bias.mitigation import ExponentiatedGradientReduction

        reduction = ExponentiatedGradientReduction(constraints="DemographicParity", estimator=logistic, seed=0)
        model = Pipeline([("prep", preprocessor(uc)), ("eg", reduction)])
        model.fit(x, y, eg__group_a=group_a, eg__group_b=~group_a)
        return model, params
    raise ValueError(f"unknown candidate '{name}' (known: {', '.join(CANDIDATES)})")


def predict_scores(model: Any, inputs: pd.DataFrame) -> np.ndarray:
    """Probability of the adverse outcome, clipped to [0, 1] (ExponentiatedGradient's mixture can exceed 1
    by a rounding error)."""
    return np.clip(model.predict_proba(inputs)[:, 1], 0.0, 1.0)


def evaluate_model(uc: UseCase, model: Any, holdout: pd.DataFrame, champion: Any = None) -> tuple[Any, np.ndarray]:
    """Performance and fairness of a model on the holdout; the champion, if any, scored on the same rows."""
    from sklearn.metrics import accuracy_score, brier_score_loss, roc_auc_score

    from fairway.fairness import approvals, deserved, group_fairness
    from fairway.gate import CandidateMetrics

    y = positive_target(uc, holdout)
    scores = predict_scores(model, holdout[uc.model_inputs])
    approved = approvals(uc, scores)
    champion_auc = None
    if champion is not None:
        champion_auc = float(roc_auc_score(y, predict_scores(champion, holdout[uc.model_inputs])))
    metrics = CandidateMetrics(
        auc=float(roc_auc_score(y, scores)),
        accuracy=float(accuracy_score(y, 1 - approved)),
        brier=float(brier_score_loss(y, scores)),
        fairness=group_fairness(uc, holdout, approved, deserved(uc, holdout)),
        champion_auc=champion_auc,
    )
    return metrics, scores


def explain_candidate(
    uc: UseCase, model: Any, train: pd.DataFrame, holdout: pd.DataFrame, folder: Path, candidate: str
) -> list[Path]:
    """The candidate's explanation evidence: permutation importance on the holdout (table and plot) and the
    reference applicant of its reason codes (from the training rows)."""
    import json

    from fairway import explanations

    inputs = holdout[uc.model_inputs]
    importance = explanations.permutation_importance(
        lambda rows: predict_scores(model, rows), inputs, positive_target(uc, holdout)
    )
    table = folder / "permutation_importance.csv"
    importance.to_csv(table, index=False)
    plot = explanations.plot_importance(
        importance, folder / "permutation_importance.png", f"{candidate}: permutation importance on the holdout"
    )
    reference = folder / "reference.json"
    reference.write_text(json.dumps(explanations.reference_point(train, uc.model_inputs), indent=2))
    return [table, plot, reference]


def load_reference(run_id: str) -> dict[str, Any]:
    """The reference applicant of a version's reason codes, logged with its run."""
    from fairway import registry

    return registry.load_dict(run_id, "evaluation/reference.json")


def train_candidate(usecase: UseCase | str | None, frame_summary: dict[str, Any], candidate: str) -> dict[str, Any]:
    """Fit, evaluate and log one candidate as an MLflow run; returns its run id and headline numbers."""
    import tempfile

    from fairway import gate, registry, verification
    from fairway.fairness import approvals, deserved, group_rates, plot_group_rates

    uc = resolve(usecase)
    train, holdout = load_frame(frame_summary)
    model, params = fit_candidate(uc, candidate, train)
    champion = verification.comparison_champion(uc)
    metrics, scores = evaluate_model(uc, model, holdout, champion)
    decision = gate.evaluate(metrics, uc.gate)
    choice = {"fairness_passed": gate.fairness_passed(metrics, uc.gate), "gate_precheck": decision.decision,
              "reasons": decision.reasons}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        rates = group_rates(uc, holdout, approvals(uc, scores), deserved(uc, holdout))
        table = Path(tmp) / "fairness_by_group.csv"
        rates.to_csv(table, index=False)
        plot = plot_group_rates(
            rates, Path(tmp) / "fairness_by_group.png", f"{candidate}: holdout {frame_summary['holdout_month']}"
        )
        explained = explain_candidate(uc, model, train, holdout, Path(tmp), candidate)
        run = registry.log_candidate(
            uc,
            candidate,
            model,
            metrics,
            frame_summary,
            params,
            [table, plot, *explained],
            holdout[uc.model_inputs].head(50),
            choice,
        )
    log.info("candidate %s: AUC %.3f, gate pre-check %s", candidate, metrics.auc, decision.decision)
    return {"candidate": candidate, "run_id": run["run_id"], "auc": metrics.auc, **choice}


def register_best(usecase: UseCase | str | None, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Register the chosen candidate (best AUC within the fairness thresholds, else the fairest) as `candidate`."""
    from fairway import gate, registry

    uc = resolve(usecase)
    metrics = {r["candidate"]: registry.run_metrics(r["run_id"]) for r in results}
    chosen = gate.choose(metrics, uc.gate)
    run_id = next(r["run_id"] for r in results if r["candidate"] == chosen)
    version = registry.register_candidate(uc, run_id)
    return {"usecase": uc.name, "model": uc.model_name, "version": version, "candidate": chosen, "run_id": run_id}
