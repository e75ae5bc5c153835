"""Benchmark: the in-process cost of one online decision against the same work done from raw parts.

One process, one small home (2,000 customers x 3 months, the last month materialized into Feast's SQLite online
store, every candidate fitted on January's snapshots with February's outcomes):

- Fairway: `OnlineScorer.predict_customer` (Feast online lookup of the model-input feature service, score,
  reason codes, pseudonym, decision record committed through `DecisionLog`), `--calls` calls (default 2,000)
  rotating over the online customers, per round;
- floor: the same work from raw parts: a `sqlite3` SELECT of the customer's rows in each view's table of the
  online store file (entity keys serialized beforehand), the values decoded from their protobufs, the score from
  the compiled linear form, the reason codes, and a raw `sqlite3` INSERT + commit into a table of the decision
  log's shape (WAL, synchronous=NORMAL, as the decision log's SQLite);
- the parts of Fairway's path alone (lookup, decision-log append);
- one-row scoring of every candidate kind: the pipeline's `predict_proba` on a one-row DataFrame against
  Fairway's one-row scorer (the compiled linear form, else `fairway.serving.row_scorer`).

Reported per round: p50 and p99 per call (µs); over `--rounds` (default 3) rounds the min/median/max of them
(the machine is shared: single rounds are noisy). Results: bench/results/request_path.json and Markdown on stdout.

    .venv/bin/python bench/bench_request_path.py [--home DIR] [--calls 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(PROJECT))


def percentiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"p50_us": ordered[len(ordered) // 2] * 1e6, "p99_us": ordered[int(len(ordered) * 0.99)] * 1e6}


def timed(call: Callable[[int], Any], calls: int) -> dict[str, float]:
    times = []
    for i in range(calls):
        start = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - start)
    return percentiles(times)


def spread(rounds: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {k: {"min": min(r[k] for r in rounds), "median": statistics.median(r[k] for r in rounds),
                "max": max(r[k] for r in rounds)} for k in rounds[0]}  # fmt: skip


def prepare(home: Path) -> dict[str, Any]:
    """Data, the online store, every candidate fitted (outside the timings)."""
    os.environ["FAIRWAY_HOME"] = str(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
    os.environ.setdefault("FAIRWAY_PSEUDONYM_KEY", "bench-key-not-secret")
    os.environ.pop("FAIRWAY_DECISION_LOG_URL", None)
    from fairway.config import load_usecase
    from fairway.data import read_month
    from fairway.explanations import reference_point
    from fairway.packaging import input_schema
    from fairway.training import CANDIDATES, fit_candidate
    from tests.champion import feature_store

    uc = load_usecase("credit_risk")
    months = feature_store(uc, customers=2000, months=3, seed=11, online_months=1)
    snapshot, _ = read_month(uc, months[0])
    _, labels = read_month(uc, months[1])
    frame = snapshot.merge(labels[[uc.entity.join_key, uc.label.feature]], on=uc.entity.join_key)
    models = {}
    for name in CANDIDATES:
        try:
            models[name] = fit_candidate(uc, name, frame)[0]
        except RuntimeError as error:  # e.g. ExponentiatedGradient without a disadvantaged group
            print(f"  {name}: not fitted ({error})", file=sys.stderr)
    metadata = {"inputs": input_schema(uc), "reference": reference_point(frame, uc.model_inputs),
                "decision_threshold": uc.gate.decision_threshold, "mlflow_model_name": uc.model_name,
                "mlflow_version": "1"}  # fmt: skip
    online, _ = read_month(uc, months[-1])
    return {"uc": uc, "models": models, "metadata": metadata, "frame": frame,
            "customers": list(online[uc.entity.join_key].iloc[:500])}  # fmt: skip


class RawParts:
    """The floor: the same lookup, score, reasons and record from raw parts."""

    def __init__(self, world: dict[str, Any], scorer: Any, folder: Path) -> None:
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value
        from feast.type_map import feast_value_type_to_python_type

        from fairway.config import paths

        uc = world["uc"]
        self.value_type, self.to_python = Value, feast_value_type_to_python_type
        self.online = sqlite3.connect(str(paths().feast_project(uc.name) / "online.db"))
        views = sorted({uc.feature(c).view for c in scorer.columns})
        self.selects = [
            f'SELECT feature_name, value, event_ts FROM "{uc.name}_{v}" WHERE entity_key = ?' for v in views
        ]
        self.keys = {
            c: serialize_entity_key(EntityKey(join_keys=[uc.entity.join_key], entity_values=[Value(string_val=c)]),
                                    entity_key_serialization_version=3)
            for c in world["customers"]
        }  # fmt: skip
        self.columns, self.scorer = scorer.columns, scorer
        self.log = sqlite3.connect(str(folder / "raw-decisions.db"), isolation_level=None)
        self.log.execute("PRAGMA journal_mode=WAL")
        self.log.execute("PRAGMA synchronous=NORMAL")
        self.log.execute("CREATE TABLE d (id INTEGER PRIMARY KEY, request_id VARCHAR(64) NOT NULL UNIQUE, "
                         "recorded_at DATETIME, usecase VARCHAR(100), endpoint VARCHAR(40), subject VARCHAR(64), "
                         "input_fingerprint VARCHAR(64), score FLOAT, decision VARCHAR(20), threshold FLOAT, "
                         "model_name VARCHAR(200), model_version VARCHAR(20), features_event_time DATETIME, "
                         "features_stale BOOLEAN, reasons TEXT)")  # fmt: skip
        self.n = 0

    def decide(self, customer: str) -> None:
        from fairway.explanations import dumps

        values: dict[str, Any] = {}
        stamps = []
        for select in self.selects:
            for name, blob, ts in self.online.execute(select, (self.keys[customer],)):
                values[name] = self.to_python(self.value_type.FromString(blob))
                stamps.append(ts)
        row = {c: values[c] for c in self.columns}
        fast = self.scorer.compiled
        score = fast(row)
        reasons = dumps(self.scorer.explain.reasons(row, score))
        self.n += 1
        self.log.execute("BEGIN")
        self.log.execute("INSERT INTO d (request_id, recorded_at, usecase, endpoint, subject, input_fingerprint, "
                         "score, decision, threshold, model_name, model_version, features_event_time, "
                         "features_stale, reasons) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         (f"r{self.n}", "2026-01-01 00:00:00.000000", "credit_risk", "predict", "s" * 32, "f" * 32,
                          score, "approve", 0.5, "credit-risk", "1", min(stamps), 0, reasons))  # fmt: skip
        self.log.execute("COMMIT")


def request_path(world: dict[str, Any], calls: int, rounds: int, folder: Path) -> dict[str, Any]:
    from fairway.serving import OnlineScorer

    scorer = OnlineScorer(world["uc"].name, world["models"]["reweighing"], world["metadata"])
    raw = RawParts(world, scorer, folder)
    customers = world["customers"]
    pick = lambda i: customers[i % len(customers)]  # noqa: E731
    for i in range(50):  # warm-up: caches, first connections
        scorer.predict_customer(pick(i))
        raw.decide(pick(i))
    record = scorer.predict_customer(pick(0))
    parts: dict[str, list[dict[str, float]]] = {"fairway": [], "floor": [], "lookup": [], "append": []}
    for _ in range(rounds):
        parts["fairway"].append(timed(lambda i: scorer.predict_customer(pick(i)), calls))
        parts["floor"].append(timed(lambda i: raw.decide(pick(i)), calls))
        parts["lookup"].append(timed(lambda i: scorer.online_features(pick(i)), calls))
        base = {**record, "reasons": "[]", "usecase": "credit_risk", "endpoint": "predict", "subject": "s" * 32,
                "input_fingerprint": "f" * 32}  # fmt: skip
        parts["append"].append(timed(lambda i, base=base: scorer.log.append({**base, "request_id": os.urandom(8).hex()}),
                                     calls))  # fmt: skip
    summary = {k: spread(v) for k, v in parts.items()}
    summary["ratio_p50"] = {
        "median": summary["fairway"]["p50_us"]["median"] / summary["floor"]["p50_us"]["median"],
        "per_round": [f["p50_us"] / r["p50_us"] for f, r in zip(parts["fairway"], parts["floor"], strict=True)],
    }
    return summary


def one_row_scoring(world: dict[str, Any], calls: int) -> list[dict[str, Any]]:
    import pandas as pd

    from fairway.serving import linear_scorer, row_scorer
    from fairway.training import predict_scores

    uc = world["uc"]
    columns = uc.model_inputs
    numeric = [c for c in columns if uc.feature(c).dtype in ("float", "int")]
    nullable = {c for c in columns if uc.feature(c).nullable}
    rows = world["frame"][columns].head(200).to_dict(orient="records")
    out = []
    for name, model in world["models"].items():
        linear = linear_scorer(model, columns)
        fast = linear or row_scorer(model, columns, numeric, nullable, world["metadata"]["reference"])
        frames = [pd.DataFrame([r], columns=columns) for r in rows]
        pipeline = timed(lambda i: predict_scores(model, frames[i % len(frames)]), min(calls, 300))  # noqa: B023
        entry = {"model": name, "form": "linear" if linear else "row_scorer" if fast else "predict_proba",
                 "predict_proba": pipeline}  # fmt: skip
        if fast is not None:
            entry["fairway"] = timed(lambda i: fast(rows[i % len(rows)]), calls)  # noqa: B023
            expected = predict_scores(model, pd.DataFrame(rows, columns=columns))
            entry["max_abs_diff"] = max(abs(fast(r) - e) for r, e in zip(rows, expected, strict=True))
        out.append(entry)
        print(f"  {name}: done", file=sys.stderr, flush=True)
    return out


def markdown(summary: dict[str, Any], scoring: list[dict[str, Any]]) -> str:
    lines = ["| path | p50 µs (min / median / max) | p99 µs (min / median / max) |", "|---|---:|---:|"]
    for key, label in (("fairway", "Fairway predict_customer"), ("floor", "raw parts floor"),
                       ("lookup", "  Fairway lookup alone"), ("append", "  Fairway decision-log append alone")):  # fmt: skip
        p50, p99 = summary[key]["p50_us"], summary[key]["p99_us"]
        lines.append(f"| {label} | {p50['min']:.0f} / {p50['median']:.0f} / {p50['max']:.0f} | "
                     f"{p99['min']:.0f} / {p99['median']:.0f} / {p99['max']:.0f} |")  # fmt: skip
    lines += ["", f"ratio of the p50s (median rounds): {summary['ratio_p50']['median']:.1f}x", "",
              "| candidate | one-row form | predict_proba p50 µs | Fairway p50 µs | p99 µs | max abs diff |",
              "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for e in scoring:
        fast = e.get("fairway", {})
        lines.append(f"| {e['model']} | {e['form']} | {e['predict_proba']['p50_us']:.0f} | "
                     f"{fast.get('p50_us', float('nan')):.0f} | {fast.get('p99_us', float('nan')):.0f} | "
                     f"{e.get('max_abs_diff', float('nan')):.1e} |")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="FAIRWAY_HOME to build in (default: a temporary directory)")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fairway-request-path-") as tmp:
        home = args.home or Path(tmp)
        home.mkdir(parents=True, exist_ok=True)
        world = prepare(home)
        summary = request_path(world, args.calls, args.rounds, home)
        scoring = one_row_scoring(world, args.calls)
    RESULTS.mkdir(exist_ok=True)
    result = {"calls": args.calls, "rounds": args.rounds, "request_path": summary, "one_row_scoring": scoring}
    (RESULTS / "request_path.json").write_text(json.dumps(result, indent=2))
    text = markdown(summary, scoring)
    (RESULTS / "request_path.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
