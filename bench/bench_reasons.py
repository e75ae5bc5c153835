"""Benchmark: the cost of reason codes per decision, against scoring the same decision without them.

Same run, same models: 5,000 generated customers (January snapshots with their outcomes) fit the baseline
(logistic, scored online through its compiled linear form) and the ExponentiatedGradient candidate (a mixture
without one, scored online through its one-row compiled form, `fairway.serving.row_scorer`). For each model:

- **online**, one decision at a time over 1,000 rows, as `fairway.serving.OnlineScorer.decide` does it:
  the baseline is `score` alone, the measured path is `score` + `ReasonCodes.reasons` (one extra score per
  model input),
- **batch**, 100,000 rows, as `fairway.inference.score_month` does it: the baseline is `predict_scores`, the
  measured path is `predict_scores` + `ReasonCodes.frame_reasons` + the JSON strings stored in the records.

Reported: microseconds per decision (online) or seconds (batch), and the ratio with / without reasons.

    make bench              # or: .venv/bin/python bench/bench_reasons.py --rows 20000
Results: bench/results/reasons.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"


def _best(fn, repeats: int = 3) -> float:  # noqa: ANN001
    """Best wall time of `repeats` calls (seconds): the least disturbed by the rest of the machine."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--online", type=int, default=1000, help="decisions scored one at a time")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the batch measurement")
    args = parser.parse_args()
    os.environ["FAIRWAY_HOME"] = tempfile.mkdtemp(prefix="fairway-bench-reasons-")
    os.environ["FAIRWAY_PSEUDONYM_KEY"] = "bench"

    from fairway import explanations
    from fairway.config import load_usecase
    from fairway.data import generate, read_month
    from fairway.serving import linear_scorer, row_scorer
    from fairway.training import fit_candidate, predict_scores

    uc = load_usecase("credit_risk")
    generate(uc, customers=5000, n_months=2, seed=5)
    snapshot, _ = read_month(uc, "2024-01")
    _, labels = read_month(uc, "2024-02")
    frame = snapshot.merge(labels[[uc.entity.join_key, uc.label.feature]], on=uc.entity.join_key)
    inputs = frame[uc.model_inputs]
    reference = explanations.reference_point(frame, uc.model_inputs)
    one_by_one = inputs.head(args.online).to_dict(orient="records")
    batch = inputs.sample(n=args.rows, replace=True, random_state=1).reset_index(drop=True)

    results = []
    for name in ("baseline", "exponentiated_gradient"):
        model, _ = fit_candidate(uc, name, frame)
        # as OnlineScorer does: the linear form, else the one-row compiled form, else predict_proba
        linear = linear_scorer(model, uc.model_inputs)
        numeric = [c for c in uc.model_inputs if uc.feature(c).dtype in ("float", "int")]
        nullable = [c for c in uc.model_inputs if uc.feature(c).nullable]
        fast = linear or row_scorer(model, uc.model_inputs, numeric, nullable, reference)
        path = "compiled linear form" if linear else "one-row compiled form" if fast else "predict_proba"

        def score_rows(rows, model=model):  # noqa: ANN001, ANN202
            return predict_scores(model, rows)

        codes = explanations.ReasonCodes(uc.model_inputs, reference, score_rows, fast,
                                         score_one_missing=linear is None and fast is not None)  # fmt: skip

        def score_one(values, fast=fast, score_rows=score_rows):  # noqa: ANN001, ANN202
            if fast is not None:
                return fast(values)
            return float(score_rows(pd.DataFrame([values], columns=uc.model_inputs))[0])

        plain = _best(lambda: [score_one(v) for v in one_by_one])  # noqa: B023
        explained = _best(lambda: [codes.reasons(v, score_one(v)) for v in one_by_one])  # noqa: B023
        batch_plain = _best(lambda: predict_scores(model, batch), repeats=2)  # noqa: B023

        def batch_with_reasons(model=model, codes=codes):  # noqa: ANN001, ANN202
            scores = predict_scores(model, batch)
            return codes.frame_reasons_json(batch, scores)

        batch_explained = _best(batch_with_reasons, repeats=2)
        results.append({
            "model": name, "online_path": path,
            "online_us_without": plain / len(one_by_one) * 1e6, "online_us_with": explained / len(one_by_one) * 1e6,
            "online_ratio": explained / plain, "batch_rows": len(batch), "batch_s_without": batch_plain,
            "batch_s_with": batch_explained, "batch_ratio": batch_explained / batch_plain,
        })  # fmt: skip
        print(f"  {name}: done", file=sys.stderr, flush=True)

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reasons.json").write_text(json.dumps({"results": results}, indent=2))
    print(
        "| model | online path | µs/decision without | with reasons | ratio | batch s without | with reasons | ratio |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['model']} | {r['online_path']} | {r['online_us_without']:.0f} | {r['online_us_with']:.0f} | "
              f"{r['online_ratio']:.1f}x | {r['batch_s_without']:.2f} | {r['batch_s_with']:.2f} | {r['batch_ratio']:.1f}x |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
