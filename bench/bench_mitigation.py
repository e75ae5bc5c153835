"""Benchmark: what each candidate does about a census-like sex gap, what it costs, and what is possible at all.

A census-income-like file (tests/datasets.py, 45,000 rows; `--gap 1`: about 30 % of men and 10 % of women above
the income line, the favourable outcome) is imported with `fairway.onboarding.init_usecase`; every candidate is
fitted on months 1-11 with `fairway.training.fit_candidate` and evaluated on month 12 with the gate's own
metrics (`evaluate_model`). Reported per candidate: AUC, sex disparate impact / statistical parity / equal
opportunity against the gate's rules, fit seconds as a ratio to the baseline's.

The floor of what any model could reach: on the baseline's and the reweighed model's scores, every pair of
thresholds, one for men and one for women (a rule that uses sex, which no candidate may), is tried; the report
gives the approval rates at which such a rule meets all three sex rules. When the approval rate the config's
decision threshold gives is outside that range, no candidate can pass on sex there.

    .venv/bin/python bench/bench_mitigation.py [--rows 45000] [--gap 1.0]
Results: bench/results/mitigation.json and Markdown tables on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(PROJECT))


def frame_of(uc, months: list[str]):  # noqa: ANN001, ANN201
    """The imported snapshots of `months` with their outcomes (delivered the month after)."""
    import pandas as pd

    from fairway.data import read_month

    parts = []
    for month in months:
        snapshot, _ = read_month(uc, month)
        _, labels = read_month(uc, str(pd.Period(month, freq="M") + 1))
        parts.append(snapshot.merge(labels[[uc.entity.join_key, uc.label.feature]], on=uc.entity.join_key))
    return pd.concat(parts, ignore_index=True)


def sex_rules(uc, metrics) -> dict:  # noqa: ANN001
    g = next(g for g in metrics.fairness if g.attribute == "sex")
    t = uc.gate
    passed = (t.disparate_impact_min <= g.disparate_impact <= t.disparate_impact_max
              and abs(g.statistical_parity) <= t.statistical_parity_max_abs
              and abs(g.equal_opportunity) <= t.equal_opportunity_max_abs)  # fmt: skip
    return {"di": g.disparate_impact, "sp": g.statistical_parity, "eo": g.equal_opportunity, "passes_sex": passed,
            "approval_rate": None}  # fmt: skip


def feasible_rates(uc, scores: np.ndarray, female: np.ndarray, favourable: np.ndarray) -> list[float]:  # noqa: ANN001
    """Approval rates at which some pair (threshold for men, threshold for women) meets the three sex rules."""
    t = uc.gate
    grid = np.quantile(scores, np.linspace(0.0, 1.0, 101)[1:])
    rates = []
    for men in grid:
        approved_men = scores[~female] < men
        if not approved_men.any():
            continue
        for women in grid:
            approved_women = scores[female] < women
            di = approved_women.mean() / approved_men.mean()
            sp = approved_women.mean() - approved_men.mean()
            eo = approved_women[favourable[female]].mean() - approved_men[favourable[~female]].mean()
            if (t.disparate_impact_min <= di <= t.disparate_impact_max and abs(sp) <= t.statistical_parity_max_abs
                    and abs(eo) <= t.equal_opportunity_max_abs):  # fmt: skip
                rates.append(float((approved_men.sum() + approved_women.sum()) / len(scores)))
    return sorted(rates)


def ranges(rates: list[float], gap: float = 0.02) -> str:
    """'0.5%-3.9%, 49%-96%': the approval rates grouped into runs."""
    if not rates:
        return "none"
    runs, start, last = [], rates[0], rates[0]
    for rate in rates[1:]:
        if rate - last > gap:
            runs.append((start, last))
            start = rate
        last = rate
    runs.append((start, last))
    return ", ".join(f"{a:.1%}-{b:.1%}" for a, b in runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=45_000)
    parser.add_argument("--gap", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fairway-bench-mitigation-") as tmp:
        os.environ["FAIRWAY_HOME"] = str(Path(tmp) / "home")
        from fairway.fairness import approvals, deserved
        from fairway.onboarding import init_usecase
        from fairway.training import CANDIDATES, evaluate_model, fit_candidate
        from tests.datasets import write_census_like

        csv = write_census_like(Path(tmp) / "census.csv", rows=args.rows, seed=0, gap=args.gap)
        uc = init_usecase("census", csv, "income", ["sex", "race"], positive="<=50K", na_values=["?"]).usecase
        months = sorted(p.name for p in (Path(tmp) / "home" / "data" / "raw" / "census").iterdir())
        train, holdout = frame_of(uc, months[:-2]), frame_of(uc, months[-2:-1])
        results: dict[str, dict] = {}
        scores_of = {}
        for name in CANDIDATES:
            started = time.perf_counter()
            model, params = fit_candidate(uc, name, train)
            seconds = time.perf_counter() - started
            metrics, scores = evaluate_model(uc, model, holdout)
            results[name] = {"auc": metrics.auc, "fit_s": seconds, **sex_rules(uc, metrics),
                             "approval_rate": float(approvals(uc, scores).mean()),
                             "mitigated": params.get("mitigated_groups", ""),
                             "eg_group": params.get("eg_protected_group", "")}  # fmt: skip
            scores_of[name] = scores
            print(f"  {name}: AUC {metrics.auc:.3f} in {seconds:.1f} s", flush=True)
        female = (holdout["sex"] == "Female").to_numpy()
        favourable = deserved(uc, holdout).astype(bool)
        floor = {name: ranges(feasible_rates(uc, scores_of[name], female, favourable))
                 for name in ("baseline", "reweighing")}  # fmt: skip
    result = {"rows": args.rows, "gap": args.gap, "train_rows": len(train), "holdout_rows": len(holdout),
              "decision_threshold": uc.gate.decision_threshold, "candidates": results,
              "per_sex_threshold_floor": floor}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mitigation.json").write_text(json.dumps(result, indent=2))
    base = results["baseline"]["fit_s"]
    print(f"\n{args.rows:,} census-like rows (gap {args.gap}), {len(train):,} training rows, holdout {len(holdout):,}; "
          f"decision threshold {uc.gate.decision_threshold}\n")  # fmt: skip
    print("| candidate | AUC | approved | sex DI | SP | EO | all sex rules | fit s | vs baseline |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['auc']:.3f} | {r['approval_rate']:.1%} | {r['di']:.3f} | {r['sp']:+.3f} | {r['eo']:+.3f} "
              f"| {'pass' if r['passes_sex'] else 'fail'} | {r['fit_s']:.1f} | {r['fit_s'] / base:.1f}x |")  # fmt: skip
    print("\nApproval rates at which thresholds set per sex meet all three sex rules (the floor no sex-blind model "
          "can beat):")  # fmt: skip
    for name, text in floor.items():
        print(f"- on the {name} scores: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
