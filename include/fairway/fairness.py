"""Fairness per protected group, computed with holisticai, plus the per-group rates behind the plots.

Conventions: the favourable outcome is approval (the model's adverse-outcome score below the decision
threshold) and a customer "deserved" approval when the label is the favourable value. Every non-reference
group of an attribute is compared with its reference group: disparate impact = approval rate of the group /
of the reference, statistical parity = the difference of the same rates, equal opportunity = the difference of
true-positive rates (approved among those who deserved it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from fairway.config import GroupSpec, UseCase
from fairway.gate import GroupFairness


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


def group_fairness(
    uc: UseCase, frame: pd.DataFrame, approved: np.ndarray, favourable: np.ndarray
) -> list[GroupFairness]:
    """holisticai classification bias metrics for every group against its attribute's reference group."""
    from holisticai.bias.metrics import classification_bias_metrics

    results = []
    for attr in uc.protected_attributes:
        reference = group_mask(frame, attr.feature, attr.groups[attr.reference])
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
            ))  # fmt: skip
    return results


def worst_disparate_impact(values: Iterable[float]) -> float | None:
    """The disparate impact furthest from parity (1) on a log scale, so 0.8 and 1.25 are equally far; NaN
    (unmeasurable) values are left out; None when nothing is left."""
    measured = [v for v in values if not math.isnan(v)]
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
