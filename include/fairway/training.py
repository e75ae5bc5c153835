"""Training: the point-in-time training frame, the candidates (baseline and bias-mitigated) and their evaluation.

The frame holds one row per labelled snapshot whose label was known at the end of the window: the subject's
pseudonym (never the raw id), the snapshot's model inputs (`model_input` service) and protected attributes
(`fairness_audit` service, for evaluation only: the mitigation's groups and the gate's fairness metrics), both as
of the snapshot time, and the label. The latest snapshot month is the holdout.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from fairway.config import UseCase, month_str, paths, resolve
from fairway.data import month_bounds, months, months_between, to_arrow, write_parquet_atomic
from fairway.features.retrieval import historical_features, rows_found
from fairway.features.store import get_store

log = logging.getLogger(__name__)

MONTH_COLUMN = "_snapshot_month"
SUBJECT_COLUMN = "subject"  # the pseudonym of the entity key in a stored training frame (records.pseudonym)


@dataclass(frozen=True)
class TrainingWindow:
    """Snapshots of `length` months whose labels were known at the end of month `end`: with outcomes delivered
    `delay` months after a snapshot (label.available_after_months), the latest such snapshot is `end` - `delay`."""

    end: str
    length: int
    delay: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "end", month_str(self.end))
        if self.length < 2:
            raise ValueError("a training window needs at least 2 months: earlier ones to train, the latest to hold out")
        if self.delay < 0:
            raise ValueError(f"an outcome delay of {self.delay} months is not possible")

    @property
    def snapshot_months(self) -> list[str]:
        first = str(pd.Period(self.end, freq="M") - self.delay - self.length + 1)
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
    return TrainingWindow(end, max(2, min(length, len(available))), uc.label.available_after_months)


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
    # left out: a snapshot the store does not have, or one without a value of a non-nullable input (a nullable
    # input's null is data, imputed by the model pipeline)
    needed = uc.model_inputs + uc.protected_features
    required = [f for f in needed if not uc.feature(f).nullable]
    found = rows_found(uc, labels[[key, ts]], needed, pd.concat([inputs, audit], axis=1)).to_numpy()
    complete = pd.Series(found & frame[required].notna().all(axis=1).to_numpy(), index=frame.index)
    dropped = int((~complete).sum())
    if dropped:
        log.warning("%d labelled snapshots have no features in the store or lack a non-nullable input: left out",
                    dropped)  # fmt: skip
    frame = pseudonymised(uc, frame[complete].reset_index(drop=True))
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


def pseudonymised(uc: UseCase, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with the entity key replaced by the subject's pseudonym (SUBJECT_COLUMN, first): a stored
    training frame never holds the raw id (GDPR Art. 25, AI Act Art. 10(5)); the erasure finds a person's rows by
    their pseudonym."""
    from fairway.records import pseudonymise

    key = uc.entity.join_key
    return pd.concat([pseudonymise(frame[key]).rename(SUBJECT_COLUMN), frame.drop(columns=[key])], axis=1)


def read_frame(summary: dict[str, Any]) -> pd.DataFrame:
    """The stored frame; refuses a missing file or one whose content changed since it was built, except by the
    removals that erasure and retention record in its ledger (fairway.erasures)."""
    from fairway.erasures import frame_removals

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

CANDIDATES = ("baseline", "reweighing", "exponentiated_gradient", "gradient_boosting", "gradient_boosting_reweighing")
REWEIGHING = "Kamiran-Calders reweighing over the intersectional protected groups (training sample weights)"
DESCRIPTIONS = {
    "baseline": ("logistic regression", "none"),
    "reweighing": ("logistic regression", REWEIGHING),
    "exponentiated_gradient": ("logistic regression", "holisticai ExponentiatedGradientReduction (demographic parity)"),
    "gradient_boosting": ("histogram gradient boosting", "none"),
    "gradient_boosting_reweighing": ("histogram gradient boosting", REWEIGHING),
}
# a category seen in fewer training rows is grouped with the other rare ones into one "infrequent" column; a
# category that appears only after training is scored as infrequent too
MIN_CATEGORY_ROWS = 20
MISSING_CATEGORY = "missing"
# ExponentiatedGradient refits its estimator once per iteration on the whole frame: it is fitted on a stratified
# sample (label x protected groups) of at most EG_MAX_ROWS training rows, for at most EG_MAX_ITER iterations
EG_MAX_ROWS = 5_000
EG_MAX_ITER = 10
# a reweighing weight is kept in [1 / WEIGHT_CAP, WEIGHT_CAP]: a tiny intersectional cell cannot dominate the fit
WEIGHT_CAP = 10.0


def preprocessor(uc: UseCase) -> Any:
    """The inputs as one dense matrix, the same in training, batch scoring and serving (it is part of the model):
    - numbers are standardised; a nullable number's missing values get the training median, plus a 0/1 column
      saying it was missing;
    - categories are one-hot encoded with the config's categories (`allowed`) or the training data's; a nullable
      category's missing values are the category "missing"; categories seen in fewer than MIN_CATEGORY_ROWS
      training rows share one "infrequent" column, and so does a category not seen in training."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def encoder(name: str) -> Any:
        allowed = uc.feature(name).allowed
        nullable = uc.feature(name).nullable
        categories: Any = "auto"
        if allowed:
            categories = [sorted({*allowed, MISSING_CATEGORY} if nullable else set(allowed))]
        onehot = OneHotEncoder(categories=categories, handle_unknown="infrequent_if_exist",
                               min_frequency=MIN_CATEGORY_ROWS, sparse_output=False)  # fmt: skip
        if not nullable:
            return onehot
        # a missing category arrives as NaN (retrieval, inference, the service) or None (a frame read back from
        # parquet): both become "missing"; NaN first, as an imputer of None refuses NaN
        fill = {"strategy": "constant", "fill_value": MISSING_CATEGORY}
        return make_pipeline(SimpleImputer(**fill), SimpleImputer(missing_values=None, **fill), onehot)

    def scaler(name: str) -> Any:
        if not uc.feature(name).nullable:
            return StandardScaler()
        return make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())

    categorical = [f for f in uc.model_inputs if uc.feature(f).dtype in ("string", "bool")]
    numeric = [f for f in uc.model_inputs if f not in categorical]
    plain_numbers = [f for f in numeric if not uc.feature(f).nullable]
    plain_categories = [f for f in categorical if not uc.feature(f).nullable]
    steps: list[tuple[str, Any, list[str]]] = []
    if plain_numbers:
        steps.append(("numeric", StandardScaler(), plain_numbers))
    steps += [(f"numeric_{f}", scaler(f), [f]) for f in numeric if f not in plain_numbers]
    if plain_categories and all(uc.feature(f).allowed for f in plain_categories):
        steps.append(("categorical", OneHotEncoder(
            categories=[sorted(uc.feature(f).allowed or []) for f in plain_categories],
            handle_unknown="infrequent_if_exist", min_frequency=MIN_CATEGORY_ROWS, sparse_output=False,
        ), plain_categories))  # fmt: skip
    else:
        steps += [(f"categorical_{f}", encoder(f), [f]) for f in plain_categories]
    steps += [(f"categorical_{f}", encoder(f), [f]) for f in categorical if f not in plain_categories]
    return ColumnTransformer(steps, sparse_threshold=0.0)


@dataclass(frozen=True)
class MitigationPlan:
    """Who the mitigated candidates protect: every protected attribute at once (`cells`: each training row's
    intersectional group, e.g. "sex=female|race=black"), and the disadvantaged group of each attribute: its group
    with the lowest favourable-outcome rate relative to the reference, among groups with at least `min_rows`
    training rows (`worst`: attribute -> (group, rate ratio)). ExponentiatedGradient, whose constraint takes two
    groups, protects the most disadvantaged of these groups (`disadvantaged`: its rows) against everyone else."""

    cells: np.ndarray
    worst: dict[str, tuple[str, float]]
    disadvantaged: np.ndarray
    min_rows: int

    @property
    def constrained(self) -> str:
        """'attribute: group' of the group ExponentiatedGradient protects ('' when none is disadvantaged)."""
        if not self.worst:
            return ""
        attribute = min(self.worst, key=lambda a: (self.worst[a][1], a))
        return f"{attribute}: {self.worst[attribute][0]}"

    def describe(self) -> dict[str, Any]:
        return {"mitigated_groups": "; ".join(f"{a}: {g} ({r:.2f} of the reference's favourable rate)"
                                              for a, (g, r) in self.worst.items()) or "none measurable",
                "mitigation_cells": int(len(np.unique(self.cells))), "mitigation_min_group_rows": self.min_rows}  # fmt: skip


def mitigation_plan(uc: UseCase, train: pd.DataFrame) -> MitigationPlan:
    """The intersectional cells and each attribute's disadvantaged group in the training labels."""
    from fairway.fairness import group_mask

    favourable = (train[uc.label.feature] == uc.label.favourable_value).to_numpy()
    min_rows = max(uc.gate.min_group_rows, len(train) // 100)
    cells = np.full(len(train), "", dtype=object)
    worst: dict[str, tuple[str, float]] = {}
    disadvantaged = np.zeros(len(train), dtype=bool)
    for attr in uc.protected_attributes:
        labels = np.full(len(train), "(none)", dtype=object)
        reference = group_mask(train, attr.feature, attr.groups[attr.reference])
        ratios: dict[str, float] = {}
        for group, spec in attr.groups.items():
            mask = group_mask(train, attr.feature, spec)
            labels[mask] = group
            if group != attr.reference and mask.sum() >= min_rows and reference.sum() >= min_rows:
                ratios[group] = float(favourable[mask].mean() / max(favourable[reference].mean(), 1e-9))
        cells = cells + ("|" if attr is not uc.protected_attributes[0] else "") + f"{attr.feature}=" + labels
        if ratios:
            group = min(ratios, key=lambda g: (ratios[g], g))
            if ratios[group] < 1:
                worst[attr.feature] = (group, ratios[group])
    if worst:
        attribute = min(worst, key=lambda a: (worst[a][1], a))
        spec = next(a for a in uc.protected_attributes if a.feature == attribute).groups[worst[attribute][0]]
        disadvantaged = group_mask(train, attribute, spec)
    else:
        log.warning("no protected group has a lower favourable rate than its reference in the training labels")
    return MitigationPlan(cells.astype(str), worst, disadvantaged, min_rows)


def reweighing_weights(cells: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kamiran & Calders' reweighing over groups: w(g, y) = P(g) P(y) / P(g, y), so that the label is independent
    of the group in the weighted data (for two groups, what holisticai's Reweighing computes), capped to
    [1 / WEIGHT_CAP, WEIGHT_CAP] and rescaled to a mean of 1."""
    frame = pd.DataFrame({"g": cells, "y": y})
    p_group = frame["g"].map(frame["g"].value_counts(normalize=True))
    p_label = frame["y"].map(frame["y"].value_counts(normalize=True))
    p_joint = frame.groupby(["g", "y"])["y"].transform("size") / len(frame)
    weights = np.clip((p_group * p_label / p_joint).to_numpy(dtype=float), 1 / WEIGHT_CAP, WEIGHT_CAP)
    return weights / weights.mean()


def stratified_sample(strata: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Row positions of a seeded sample of at most `size` rows keeping each stratum's share (every stratum keeps
    one row at least); all rows when there are not more."""
    if len(strata) <= size:
        return np.arange(len(strata))
    rng = np.random.default_rng(seed)
    chosen = []
    for value in np.unique(strata):
        rows = np.flatnonzero(strata == value)
        take = max(1, round(len(rows) * size / len(strata)))
        chosen.append(rng.choice(rows, size=min(take, len(rows)), replace=False))
    return np.sort(np.concatenate(chosen))


def _classifier(name: str) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    if DESCRIPTIONS[name][0] == "histogram gradient boosting":
        return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, early_stopping=True, random_state=0)
    return LogisticRegression(max_iter=2000, C=1.0)


def fit_candidate(uc: UseCase, name: str, train: pd.DataFrame) -> tuple[Any, dict[str, Any]]:
    """Fit one candidate; protected attributes are used at fit time only, never as model inputs."""
    from sklearn.pipeline import Pipeline

    if name not in DESCRIPTIONS:
        raise ValueError(f"unknown candidate '{name}' (known: {', '.join(CANDIDATES)})")
    x, y = train[uc.model_inputs], positive_target(uc, train)
    algorithm, mitigation = DESCRIPTIONS[name]
    params: dict[str, Any] = {"candidate": name, "algorithm": algorithm, "mitigation": mitigation,
                              "train_rows": len(train)}  # fmt: skip
    model = Pipeline([("prep", preprocessor(uc)), ("clf", _classifier(name))])
    if mitigation == "none":
        return model.fit(x, y), params
    plan = mitigation_plan(uc, train)
    params.update(plan.describe())
    if mitigation == REWEIGHING:
        return model.fit(x, y, clf__sample_weight=reweighing_weights(plan.cells, y)), params
    from holisticai.bias.mitigation import ExponentiatedGradientReduction

    group_a = plan.disadvantaged
    if not group_a.any() or group_a.all():
        raise RuntimeError("ExponentiatedGradient needs a disadvantaged group and others in the training data: "
                           f"none of {uc.protected_features} has a group with a lower favourable rate")  # fmt: skip
    rows = stratified_sample(np.char.add(plan.cells, y.astype(str)), EG_MAX_ROWS)
    params.update(eg_protected_group=plan.constrained, eg_sample_rows=len(rows), eg_max_iter=EG_MAX_ITER)
    reduction = ExponentiatedGradientReduction(constraints="DemographicParity", estimator=_classifier("baseline"),
                                               max_iter=EG_MAX_ITER, seed=0)  # fmt: skip
    # the inputs are prepared as for every other candidate (on all training rows: the same categories, medians
    # and rare-category grouping); only the reduction sees the sample
    prep = preprocessor(uc).fit(x)
    reduction.fit(prep.transform(x.iloc[rows]), y[rows], group_a=group_a[rows], group_b=~group_a[rows])
    return Pipeline([("prep", prep), ("eg", reduction)]), params


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
    integers = [f for f in uc.model_inputs if uc.feature(f).dtype == "int"]
    reference.write_text(json.dumps(explanations.reference_point(train, uc.model_inputs, integers), indent=2))
    return [table, plot, reference]


def synthetic_example(uc: UseCase, train: pd.DataFrame) -> pd.DataFrame:
    """The input example logged with a model (MLflow's input_example.json and serving_input_example.json, copied
    into BentoML's store): one synthetic row, the version's reference applicant (each input's median or most
    frequent value over the training rows, as the reason codes use it) in the training frame's dtypes. It is
    never a person's row: a model's files are hashed in the promotion ledger and cannot be erased from."""
    from fairway import explanations

    inputs = train[uc.model_inputs]
    integers = [f for f in uc.model_inputs if uc.feature(f).dtype == "int"]
    point = explanations.reference_point(inputs, uc.model_inputs, integers)
    for name in uc.model_inputs:
        if pd.api.types.is_bool_dtype(inputs[name]):
            point[name] = str(point[name]) == "True"  # reference_point gives the most frequent value as text
    return pd.DataFrame([point], columns=uc.model_inputs).astype(inputs.dtypes.to_dict())


def load_reference(run_id: str) -> dict[str, Any]:
    """The reference applicant of a version's reason codes, logged with its run."""
    from fairway import registry

    return registry.load_dict(run_id, "evaluation/reference.json")


class CandidateFailed(RuntimeError):
    """Every candidate of a training run failed: nothing can be registered."""


def train_candidate(usecase: UseCase | str | None, frame_summary: dict[str, Any], candidate: str) -> dict[str, Any]:
    """Fit, evaluate and log one candidate as an MLflow run; returns its run id and headline numbers. A candidate
    that raises is logged as a failed run with its reason and returned as `{"failed": True, "error": ...}`: the
    other candidates of the run are still compared (register_best fails only when all of them failed)."""
    import traceback

    from fairway import registry

    uc = resolve(usecase)
    try:
        return _train_and_log(uc, frame_summary, candidate)
    except Exception as error:  # noqa: BLE001 - recorded with its traceback; the run goes on without it
        reason = f"{type(error).__name__}: {error}"
        log.exception("candidate %s failed: %s", candidate, reason)
        algorithm, mitigation = DESCRIPTIONS.get(candidate, ("?", "?"))
        params = {"candidate": candidate, "algorithm": algorithm, "mitigation": mitigation}
        run_id = registry.log_failed_candidate(uc, candidate, frame_summary, params, reason, traceback.format_exc())
        return {"candidate": candidate, "run_id": run_id, "failed": True, "error": reason}


def _train_and_log(uc: UseCase, frame_summary: dict[str, Any], candidate: str) -> dict[str, Any]:
    import tempfile

    from fairway import energy, gate, registry, verification
    from fairway.fairness import approvals, deserved, group_rates, plot_group_rates

    train, holdout = load_frame(frame_summary)
    log.info("candidate %s: fitting on %d rows, evaluating on %d (holdout %s)", candidate, len(train), len(holdout),
             frame_summary["holdout_month"])  # fmt: skip
    with energy.tracked(uc.energy, f"candidate {candidate}") as used:  # fit and evaluation: one tracker
        started = time.perf_counter()
        model, params = fit_candidate(uc, candidate, train)
        params["fit_seconds"] = round(time.perf_counter() - started, 2)
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
        run = registry.log_candidate(uc, candidate, model, metrics, frame_summary, params, [table, plot, *explained],
                                     synthetic_example(uc, train), choice)  # fmt: skip
    registry.log_energy(run["run_id"], used.metrics(), used.tags())
    log.info("candidate %s: AUC %.3f, gate pre-check %s (fit %.1f s)", candidate, metrics.auc, decision.decision,
             params["fit_seconds"])  # fmt: skip
    return {"candidate": candidate, "run_id": run["run_id"], "auc": metrics.auc, "failed": False,
            "fit_seconds": params["fit_seconds"], **used.metrics(), **choice}  # fmt: skip


def register_best(usecase: UseCase | str | None, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Register the chosen candidate (best AUC within the fairness thresholds, else the fairest) as `candidate`;
    failed candidates are left out of the choice and named in the result. Raises CandidateFailed (every
    candidate's reason) when none trained."""
    from fairway import gate, registry

    uc = resolve(usecase)
    failed = [r for r in results if r.get("failed")]
    trained = [r for r in results if not r.get("failed")]
    if not trained:
        raise CandidateFailed("every candidate failed, nothing to register: "
                              + "; ".join(f"{r['candidate']}: {r['error']}" for r in failed))  # fmt: skip
    metrics = {r["candidate"]: registry.run_metrics(r["run_id"]) for r in trained}
    chosen = gate.choose(metrics, uc.gate)
    run_id = next(r["run_id"] for r in trained if r["candidate"] == chosen)
    version = registry.register_candidate(uc, run_id)
    return {"usecase": uc.name, "model": uc.model_name, "version": version, "candidate": chosen, "run_id": run_id,
            "failed": {r["candidate"]: r["error"] for r in failed}}  # fmt: skip
