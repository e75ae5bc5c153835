"""Fairness per protected group, computed with holisticai, plus the per-group rates behind the plots.

Conventions: the favourable outcome is approval (the model's adverse-outcome score below the decision
threshold) and a customer "deserved" approval when the label is the favourable value. Every non-reference
group of an attribute is compared with its reference group: disparate impact = approval rate of the group /
of the reference, statistical parity = the difference of the same rates, equal opportunity = the difference of
true-positive rates (approved among those who deserved it).

Assessable: a group is judged by the gate only when it and its reference each have at least
`gate.min_group_rows` rows and both outcomes (some rows that deserved approval and some that did not); otherwise
its metrics are still computed where they can be (NaN where not) and it carries `assessable=False` and the reason.

Uncertainty: each of the three gate metrics carries a seeded bootstrap 95 % percentile interval. The group's rows
and the reference's rows are resampled separately, with replacement, each to its own size (a stratified
bootstrap: the sizes stay those of the data, as in the comparison itself), BOOTSTRAP_RESAMPLES times. The r-th
resample of the `n` rows of the group at position `k` of attribute `a` (positions in the config; the reference
has its own) is the r-th call of `rng.integers(0, n, n)` on `rng = np.random.default_rng([seed, a, k])`, so a
group's interval does not depend on the other groups. The metrics are recomputed on each pair of resamples from the rates defined above;
resamples where a metric is undefined (the reference resample approves nobody, for disparate impact; no row that
deserved approval, for equal opportunity) are left out of that metric's interval, which spans the 2.5th to the
97.5th percentile of the rest (numpy's linear method). The intervals are reported; the gate decides on the point
estimates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fairway.config import GroupSpec, UseCase
from fairway.gate import NAN_INTERVAL, GroupFairness

BOOTSTRAP_RESAMPLES = 500
BOOTSTRAP_SEED = 0
BOOTSTRAP_PERCENTILES = (2.5, 97.5)


def group_mask(frame: pd.DataFrame, column: str, spec: GroupSpec) -> np.ndarray:
    """Rows of a group: by listed values, or by a numeric range [min, max)."""
    series = frame[column]
    if spec.values is not None:
        return series.astype(str).isin(spec.values).to_numpy()
    mask = series.notna().to_numpy()
    if spec.min is not None:
        mask &= (series >= spec.min).to_numpy()
    if spec.max is not None:
        mask &= (series < spec.max).to_numpy()
    return mask


def approvals(uc: UseCase, scores: np.ndarray) -> np.ndarray:
    """1 where a score (probability of the adverse outcome) leads to approval."""
    return (np.asarray(scores) < uc.gate.decision_threshold).astype(int)


def deserved(uc: UseCase, frame: pd.DataFrame) -> np.ndarray:
    """1 where the observed outcome was the favourable one."""
    return (frame[uc.label.feature] == uc.label.favourable_value).to_numpy(dtype=int)


def _nan_metrics() -> dict[str, float]:
    return dict.fromkeys(
        ["Disparate Impact", "Statistical Parity", "Equality of Opportunity Difference", "False Positive Rate Difference",
         "Average Odds Difference", "Accuracy Difference"], math.nan,
    )  # fmt: skip


@dataclass(frozen=True)
class Resampled:
    """Approval rate and true-positive rate of each bootstrap resample of one group's rows."""

    approval_rate: np.ndarray
    true_positive_rate: np.ndarray


def resample_rates(approved: np.ndarray, favourable: np.ndarray, rng: np.random.Generator, resamples: int) -> Resampled:
    """`resamples` bootstrap resamples of a group's rows (its `approved` and `favourable` flags), drawn at once: row
    r of the index matrix equals the r-th `rng.integers(0, n, n)`."""
    a = np.asarray(approved).astype(bool)
    f = np.asarray(favourable).astype(bool)
    n = len(a)
    picks = rng.integers(0, n, size=(resamples, n), dtype=np.int32)
    approved_count = a[picks].sum(axis=1)
    deserving = f[picks].sum(axis=1)
    approved_deserving = (a & f)[picks].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return Resampled(approved_count / n, np.where(deserving > 0, approved_deserving / deserving, np.nan))


def percentile_interval(values: np.ndarray) -> tuple[float, float]:
    """The 95 % percentile interval of the finite values (NaN, NaN when there are none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return NAN_INTERVAL
    low, high = np.percentile(finite, BOOTSTRAP_PERCENTILES)
    return float(low), float(high)


def bootstrap_intervals(group: Resampled, reference: Resampled) -> dict[str, tuple[float, float]]:
    """Intervals of disparate impact, statistical parity and equal opportunity from paired resamples."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = group.approval_rate / reference.approval_rate
    return {
        "disparate_impact_ci": percentile_interval(ratio),
        "statistical_parity_ci": percentile_interval(group.approval_rate - reference.approval_rate),
        "equal_opportunity_ci": percentile_interval(group.true_positive_rate - reference.true_positive_rate),
    }


def assessment(
    uc: UseCase, reference: str, favourable_group: np.ndarray, favourable_reference: np.ndarray
) -> str | None:
    """Why a group cannot be assessed against its reference (rows below gate.min_group_rows, a single outcome),
    or None when it can."""
    minimum, label = uc.gate.min_group_rows, uc.label.feature
    found = []
    for prefix, outcomes in (("", favourable_group), (f"reference {reference}: ", favourable_reference)):
        n = len(outcomes)
        if n < minimum:
            found.append(f"{prefix}{n} rows, fewer than gate.min_group_rows {minimum}")
        if n and len(np.unique(outcomes)) < 2:
            which = "favourable" if outcomes[0] == 1 else "unfavourable"
            found.append(f"{prefix}all {n} rows have the {which} outcome of {label}: both outcomes are needed")
    return "; ".join(found) or None


def _rate(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else math.nan


def side_rates(approved: np.ndarray, favourable: np.ndarray, group: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Accuracy (decision matches the outcome) and false-positive rate (approved among unfavourable outcomes) of a
    group's rows and of its reference's rows."""
    rates = {}
    for side, mask in (("group", group), ("reference", reference)):
        a, f = approved[mask], favourable[mask]
        rates[f"accuracy_{side}"] = _rate(a == f)
        rates[f"false_positive_rate_{side}"] = _rate(a[f == 0])
    return rates


def group_fairness(
    uc: UseCase,
    frame: pd.DataFrame,
    approved: np.ndarray,
    favourable: np.ndarray,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> list[GroupFairness]:
    """holisticai classification bias metrics for every group against its attribute's reference group, whether it
    can be assessed, and the bootstrap intervals of the gate's metrics (module docstring)."""
    from holisticai.bias.metrics import classification_bias_metrics

    approved, favourable = np.asarray(approved), np.asarray(favourable)
    results = []
    for a, attr in enumerate(uc.protected_attributes):
        positions = {name: k for k, name in enumerate(attr.groups)}
        reference = group_mask(frame, attr.feature, attr.groups[attr.reference])
        reference_resampled = None
        if reference.any():
            rng = np.random.default_rng([seed, a, positions[attr.reference]])
            reference_resampled = resample_rates(approved[reference], favourable[reference], rng, resamples)
        for group, spec in attr.groups.items():
            if group == attr.reference:
                continue
            mask = group_mask(frame, attr.feature, spec)
            measurable = mask.sum() > 0 and reference.sum() > 0 and len(np.unique(favourable[mask])) == 2
            if measurable:
                table = classification_bias_metrics(mask, reference, approved, favourable, metric_type="both")
                values = {str(k): float(v) for k, v in table["Value"].items()}
            else:
                values = _nan_metrics()
            intervals = dict.fromkeys(("disparate_impact_ci", "statistical_parity_ci", "equal_opportunity_ci"),
                                      NAN_INTERVAL)  # fmt: skip
            if mask.any() and reference_resampled is not None:
                rng = np.random.default_rng([seed, a, positions[group]])
                measured = bootstrap_intervals(resample_rates(approved[mask], favourable[mask], rng, resamples),
                                               reference_resampled)  # fmt: skip
                for name, point in (("disparate_impact_ci", "Disparate Impact"),
                                    ("statistical_parity_ci", "Statistical Parity"),
                                    ("equal_opportunity_ci", "Equality of Opportunity Difference")):  # fmt: skip
                    if not math.isnan(values[point]):
                        intervals[name] = measured[name]
            reason = assessment(uc, attr.reference, favourable[mask], favourable[reference])
            sides = side_rates(approved, favourable, mask, reference)
            results.append(GroupFairness(
                attribute=attr.feature,
                group=group,
                reference=attr.reference,
                group_size=int(mask.sum()),
                reference_size=int(reference.sum()),
                selection_rate_group=float(approved[mask].mean()) if mask.any() else math.nan,
                selection_rate_reference=float(approved[reference].mean()) if reference.any() else math.nan,
                disparate_impact=values["Disparate Impact"],
                statistical_parity=values["Statistical Parity"],
                equal_opportunity=values["Equality of Opportunity Difference"],
                false_positive_rate_difference=values["False Positive Rate Difference"],
                average_odds_difference=values["Average Odds Difference"],
                accuracy_difference=values["Accuracy Difference"],
                accuracy_group=sides["accuracy_group"],
                accuracy_reference=sides["accuracy_reference"],
                false_positive_rate_group=sides["false_positive_rate_group"],
                false_positive_rate_reference=sides["false_positive_rate_reference"],
                assessable=reason is None,
                reason=reason,
                **intervals,
            ))  # fmt: skip
    return results


def worst_disparate_impact(values: Iterable[float | None]) -> float | None:
    """The disparate impact furthest from parity (1) on a log scale, so 0.8 and 1.25 are equally far; NaN
    (unmeasurable) values are left out; None when nothing is left."""
    measured = [v for v in values if v is not None and not math.isnan(v)]
    if not measured:
        return None
    return max(measured, key=lambda v: abs(math.log(v)) if v > 0 else math.inf)


def group_rates(uc: UseCase, frame: pd.DataFrame, approved: np.ndarray, favourable: np.ndarray) -> pd.DataFrame:
    """Per attribute and group: size, approval rate, true-positive rate, false-positive rate, error rate."""
    rows = []
    for attr in uc.protected_attributes:
        for group, spec in attr.groups.items():
            mask = group_mask(frame, attr.feature, spec)
            a, f = approved[mask], favourable[mask]
            rows.append({
                "attribute": attr.feature,
                "group": group,
                "reference": group == attr.reference,
                "size": int(mask.sum()),
                "approval_rate": float(a.mean()) if len(a) else math.nan,
                "true_positive_rate": float(a[f == 1].mean()) if (f == 1).any() else math.nan,
                "false_positive_rate": float(a[f == 0].mean()) if (f == 0).any() else math.nan,
                "error_rate": float((a != f).mean()) if len(a) else math.nan,
            })  # fmt: skip
    return pd.DataFrame(rows)


def plot_group_rates(rates: pd.DataFrame, path: Path, title: str) -> Path:
    """Bar charts per protected attribute: approval rate, true-positive and false-positive rate by group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attributes = list(dict.fromkeys(rates["attribute"]))
    fig, axes = plt.subplots(1, len(attributes), figsize=(4.2 * len(attributes), 3.6), squeeze=False)
    measures = [("approval_rate", "approval"), ("true_positive_rate", "TPR"), ("false_positive_rate", "FPR")]
    for ax, attribute in zip(axes[0], attributes, strict=True):
        part = rates[rates["attribute"] == attribute]
        x = np.arange(len(part))
        for i, (column, label) in enumerate(measures):
            ax.bar(x + (i - 1) * 0.27, part[column], width=0.27, label=label)
        ax.set_xticks(
            x,
            [
                f"{g}{' (ref)' if r else ''}\nn={n}"
                for g, r, n in zip(part["group"], part["reference"], part["size"], strict=True)
            ],
        )
        ax.set_ylim(0, 1)
        ax.set_title(attribute)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("rate on the holdout")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
