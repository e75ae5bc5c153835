"""Benchmark: what the audit evidence costs, each against the floor of the same work done without it, same run.

World: generated customers over several months in the offline store (every month) and the online store (the last
month), a champion trained, gated and approved in a real MLflow registry, one month scored.

- **erasure**: `fairway.privacy.erase` of one person (every store rewritten without them, every other file, log and
  model searched) against the floor any complete search needs: reading every byte under FAIRWAY_HOME once and
  looking for the id (`bytes.find`). Three people, the median and the slowest reported.
- **energy**: a candidate's fit with its CodeCarbon tracker against the same fit untracked (`energy.enabled:
  false`), after the first tracker of the process (its hardware probe, about 3 s, is paid once, by the champion).
- **evidence bundle**: `fairway evidence` (collect, hash, index) against copying the bundle's files
  (`shutil.copytree`).

    make bench              # or: .venv/bin/python bench/bench_evidence.py --customers 20000
Results: bench/results/evidence.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))


def _seconds(fn) -> float:  # noqa: ANN001
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def byte_scan(root: Path, needle: bytes) -> int:
    """Files under `root` holding `needle`: every byte read once."""
    found = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as handle:
                found += needle in handle.read()
    return found


def world(customers: int, months: int) -> tuple[object, str]:
    from fairway import promotion
    from fairway.config import load_usecase
    from fairway.inference import pin_champion, score_month
    from tests.champion import feature_store, make_champion

    uc = load_usecase("credit_risk")
    written = feature_store(uc, customers=customers, months=months, seed=7, online_months=1)
    version = make_champion(uc, written[-2], months - 2)
    promotion.document(uc, version)
    score_month(uc, written[-1], pin_champion(uc), "bench")
    return uc, version


def bench_erasure(uc: object, home: Path, people: int) -> dict[str, float]:
    from fairway import privacy
    from fairway.data import read_month

    snapshot, _ = read_month(uc, "2024-01")  # type: ignore[arg-type]
    ids = [str(v) for v in snapshot[uc.entity.join_key].iloc[[11, 222, 3333 % len(snapshot)]]][:people]  # type: ignore[attr-defined]
    erase = [_seconds(lambda i=i: privacy.erase(uc, i)) for i in ids]  # type: ignore[arg-type]
    scan = [_seconds(lambda i=i: byte_scan(home, i.encode())) for i in ids]
    size = sum(p.stat().st_size for p in home.rglob("*") if p.is_file())
    return {"erase_median_s": statistics.median(erase), "erase_max_s": max(erase),
            "scan_median_s": statistics.median(scan), "ratio_median": statistics.median(erase) / statistics.median(scan),
            "home_mb": size / 1e6}  # fmt: skip


def bench_energy(uc: object, repeats: int) -> dict[str, float]:
    from fairway import energy
    from fairway.config import EnergySpec
    from fairway.training import build_training_frame, fit_candidate, read_frame

    train = read_frame(build_training_frame(uc, "2024-04", 3))  # type: ignore[arg-type]
    on, off = EnergySpec(enabled=True), EnergySpec(enabled=False)

    def fit(spec: EnergySpec) -> None:
        with energy.tracked(spec, "bench"):
            fit_candidate(uc, "baseline", train)  # type: ignore[arg-type]

    tracked = [_seconds(lambda: fit(on)) for _ in range(repeats)]
    plain = [_seconds(lambda: fit(off)) for _ in range(repeats)]
    return {"tracked_median_s": statistics.median(tracked),
            "untracked_median_s": statistics.median(plain),
            "ratio_median": statistics.median(tracked) / statistics.median(plain)}  # fmt: skip


def bench_bundle(uc: object, version: str, home: Path) -> dict[str, float]:
    from fairway import evidence

    out = home / "bench-bundle"
    written = _seconds(lambda: evidence.bundle(uc, version, out))  # type: ignore[arg-type]
    copy = _seconds(lambda: shutil.copytree(out, home / "bench-copy"))
    files = sum(1 for p in out.rglob("*") if p.is_file())
    return {"bundle_s": written, "copytree_s": copy, "ratio": written / copy, "files": files}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="fairway-bench-evidence-"))
    os.environ["FAIRWAY_HOME"] = str(home)
    os.environ["FAIRWAY_PSEUDONYM_KEY"] = "bench"
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{home}/mlflow/mlflow.db")
    os.environ.setdefault("BENTOML_HOME", str(home / "bentoml"))

    uc, version = world(args.customers, args.months)
    results = {"customers": args.customers, "months": args.months,
               "energy": bench_energy(uc, args.repeats), "evidence_bundle": bench_bundle(uc, version, home),
               "erasure": bench_erasure(uc, home, 3)}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "evidence.json").write_text(json.dumps(results, indent=2))
    e, n, b = results["erasure"], results["energy"], results["evidence_bundle"]
    print(f"\n{args.customers} customers x {args.months} months, FAIRWAY_HOME {e['home_mb']:.0f} MB\n")
    print("| measured | seconds | baseline | seconds | ratio |\n|---|---|---|---|---|")
    print(f"| erase one person (median of 3; slowest {e['erase_max_s']:.2f}) | {e['erase_median_s']:.2f} "
          f"| byte scan of FAIRWAY_HOME | {e['scan_median_s']:.2f} | {e['ratio_median']:.1f}x |")
    print(f"| candidate fit, CodeCarbon tracker (not the first of the process) "
          f"| {n['tracked_median_s']:.2f} | untracked fit | {n['untracked_median_s']:.2f} | {n['ratio_median']:.2f}x |")
    print(f"| `fairway evidence` ({b['files']} files) | {b['bundle_s']:.2f} | copytree of the bundle "
          f"| {b['copytree_s']:.3f} | {b['ratio']:.0f}x |")
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
