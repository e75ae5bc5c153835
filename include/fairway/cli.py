"""`fairway`: the command line of the project (data, feature store, catalogue, config).

Every command works on the use case named by --usecase (default: $FAIRWAY_USECASE, else credit_risk) and
writes only under FAIRWAY_HOME (default ./.fairway).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence

from fairway.config import ConfigError, load_usecase, load_usecase_file, paths, resolve
from fairway.fairness import worst_disparate_impact


def _cmd_data_generate(args: argparse.Namespace) -> int:
    from fairway.data import generate

    uc = resolve(args.usecase)
    synthetic = uc.synthetic
    files = generate(
        uc,
        customers=args.customers or (synthetic.customers if synthetic else 5000),
        n_months=args.months or (synthetic.months if synthetic else 12),
        seed=args.seed if args.seed is not None else (synthetic.seed if synthetic else 0),
        drift_month=args.drift_month
        if args.drift_month is not None
        else (synthetic.drift_month if synthetic else None),
        churn=synthetic.monthly_churn if synthetic else 0.02,
        start_month=args.start,
        progress=lambda line: print(line, flush=True),
    )
    print(f"wrote {len(files)} files under {paths().raw / uc.name}")
    return 0


def _cmd_data_validate(args: argparse.Namespace) -> int:
    from fairway.data import available_months, validate_month

    uc = resolve(args.usecase)
    for month in args.month or available_months(uc):
        print(json.dumps(validate_month(uc, month).summary()))
    return 0


def _cmd_features_apply(args: argparse.Namespace) -> int:
    from fairway.features.store import apply_repo

    print(json.dumps(apply_repo(args.usecase)))
    return 0


def _cmd_features_ingest(args: argparse.Namespace) -> int:
    from fairway.features.store import materialize_month, write_offline_partition

    print(json.dumps(write_offline_partition(args.usecase, args.month)))
    print(json.dumps(materialize_month(args.usecase, args.month)))
    return 0


def _cmd_features_counts(args: argparse.Namespace) -> int:
    from fairway.features.store import offline_row_counts

    print(offline_row_counts(args.usecase).to_string())
    return 0


def _cmd_catalogue(args: argparse.Namespace) -> int:
    from fairway.features.catalogue import catalogue
    from fairway.features.store import get_store

    report = catalogue(get_store(resolve(args.usecase)))
    if args.json:
        print(json.dumps({"rows": report.rows, "violations": report.violations}, indent=2))
    else:
        print(report.table())
    if args.action == "check":
        if report.violations:
            print("\nCATALOGUE CHECK FAILED:", file=sys.stderr)
            for violation in report.violations:
                print(f"  - {violation}", file=sys.stderr)
            return 1
        print(
            f"\ncatalogue check passed: {len(report.model_inputs)} model inputs, no unjustified protected or proxy features"
        )
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    uc = load_usecase_file(args.path) if args.path else load_usecase(args.usecase)
    if args.action == "show":
        print(json.dumps(uc.model_dump(), indent=2))
    else:
        print(f"{uc.name}: valid ({len(uc.features)} features, {len(uc.feature_views)} views)")
    return 0


def status_table(status: dict) -> str:
    """The registry status as text: the champion and its approval, then every version."""
    champion = status["champion"]
    lines = [f"model {status['model']} (use case {status['usecase']}, MLflow {status['tracking_uri']})"]
    if champion:
        approval = champion["approval"]
        lines.append(f"champion: v{champion['version']}, approved by {approval.get('approver')} at "
                     f"{approval.get('decided_at')} ({approval.get('mode')}): {approval.get('comment')}")  # fmt: skip
        if champion["stopped"]:
            lines.append(f"STOPPED: {champion['stopped']}")
    else:
        lines.append("champion: none")
    if status["alias_champion"] != (champion["version"] if champion and not champion["stopped"] else None):
        lines.append(f"WARNING: MLflow alias champion points at {status['alias_champion'] or 'nothing'}, not what the "
                     "promotion ledger says: run `fairway verify`")  # fmt: skip
    if status["ledger_problem"]:
        lines.append(f"WARNING: {status['ledger_problem']}")
    header = f"{'version':>7}  {'candidate':<24} {'status':<11} {'gate':<8} {'AUC':>6} {'worst DI':>8}  approval"
    lines += ["", header, "-" * len(header)]
    for row in status["versions"]:
        worst = worst_disparate_impact(v for k, v in row["metrics"].items() if k.endswith(".disparate_impact"))
        approval = row["approval"].get("decision", "-") + (
            f" by {row['approval']['approver']}" if row["approval"] else ""
        )
        lines.append(
            f"{row['version']:>7}  {row['candidate'] or '-':<24} {row['status'] or '-':<11} {row['gate_decision'] or '-':<8} "
            f"{row['metrics'].get('auc', float('nan')):>6.3f} {float('nan') if worst is None else worst:>8.3f}  {approval}"
        )
    return "\n".join(lines)


def _cmd_status(args: argparse.Namespace) -> int:
    from fairway.registry import dumps, status

    report = status(resolve(args.usecase))
    print(dumps(report) if args.json else status_table(report))
    return 0


def _cmd_monitoring(args: argparse.Namespace) -> int:
    from fairway.monitoring import monitoring_dir, read_history

    uc = resolve(args.usecase)
    history = read_history(uc)
    if args.json:
        print(history.to_json(orient="records", indent=2))
        return 0
    if history.empty:
        print(f"no month of '{uc.name}' has been monitored yet (run the monitoring DAG after batch_inference)")
        return 0
    columns = ["month", "model_version", "rows_scored", "drift_share", "judged_month", "auc", "alerts",
               "retraining_requested"]  # fmt: skip
    fairness = [c for c in history.columns if c.endswith(".disparate_impact")]
    print(history[columns + fairness].to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-"))
    print(f"\nreports: {monitoring_dir(uc) / 'index.html'}")
    return 0


def _cmd_alerts(args: argparse.Namespace) -> int:
    """The escalation alerts (fairway.escalation); `--accept ID --by NAME --reason TEXT` records a person's acceptance."""
    import json

    from fairway import escalation

    uc = resolve(args.usecase)
    if args.accept:
        if not args.by or not args.reason:
            raise SystemExit("fairway alerts --accept needs --by and --reason")
        accepted = escalation.accept_alert(uc, args.accept, args.by, args.reason)
        print(f"{accepted['id']} accepted by {accepted['accepted']['by']}: {accepted['accepted']['reason']}")
        return 0
    found = escalation.alerts(uc)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    for alert in found:
        state = "accepted" if alert.get("accepted") else ("notified" if alert.get("notified_at") else "not notified")
        print(f"{alert['id']:<32} v{alert['model_version']:<4} {state:<13} {alert['summary']}")
    print(f"{len(found)} alert(s) in {escalation.alerts_dir(uc)}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    """`bentoml serve` the champion's bento (replaces this process)."""
    import os
    from pathlib import Path

    from fairway import registry
    from fairway.packaging import bentoml_environment
    from fairway.verification import scoring_champion

    uc = resolve(args.usecase)
    champion = registry.get_version(uc, scoring_champion(uc)["version"])  # the ledger's, checked; else it refuses
    if not champion.tags.get("fairway.bento"):
        raise RuntimeError(f"'{uc.model_name}' v{champion.version} is not packaged yet: run fairness_gate's package step")
    bentoml_environment()
    bento = champion.tags["fairway.bento"]
    executable = str(Path(sys.executable).parent / "bentoml")
    print(f"serving {uc.model_name} v{champion.version} ({bento}) on http://{args.host}:{args.port}", flush=True)
    os.execv(executable, [executable, "serve", bento, "--host", args.host, "--port", str(args.port)])
    return 0  # not reached


def _request_id(args: argparse.Namespace) -> str:
    """--request-id, or the batch decision of --customer-id in --month."""
    from fairway.review import request_id_of_customer

    if args.request_id:
        return str(args.request_id)
    if args.customer_id and args.month:
        return request_id_of_customer(args.usecase, args.customer_id, args.month)
    raise ValueError("name the decision: --request-id ID, or --customer-id ID --month YYYY-MM for a batch decision")


def _cmd_review(args: argparse.Namespace) -> int:
    """Record a person's override of a decision, or the outcome of the person's contest (GDPR Art. 22(3))."""
    from fairway.review import UnknownDecision, record_review

    try:
        result = record_review(args.usecase, _request_id(args), args.decision, args.by, args.reason, args.kind)
    except UnknownDecision as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    review, decision = result["review"], result["decision"]
    print(f"{review['kind']} of {decision.request_id} recorded: {decision.decision} -> {review['decision']} by "
          f"{review['reviewer']} at {review['reviewed_at']:%Y-%m-%d %H:%M:%S} UTC (model {decision.model_name} "
          f"v{decision.model_version}); effective decision: {result['effective_decision']}")  # fmt: skip
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    """A plain-language explanation of one decision for the person it concerns (AI Act Art. 86)."""
    from pathlib import Path

    from fairway.review import UnknownDecision, explanation

    try:
        text = explanation(args.usecase, _request_id(args))
    except UnknownDecision as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}")
    else:
        print(text, end="")
    return 0


def _cmd_evidence(args: argparse.Namespace) -> int:
    """The evidence bundle of a promoted version: an HTML index and a manifest with every file's SHA-256."""
    from pathlib import Path

    from fairway.evidence import bundle

    result = bundle(args.usecase, args.version, Path(args.out) if args.out else None)
    print(f"evidence bundle of v{args.version}: {result['files']} files in {result['folder']}")
    print(f"index: {result['index']}\nmanifest: {result['manifest']}")
    return 0


def _cmd_erase(args: argparse.Namespace) -> int:
    from fairway.privacy import erase

    result = erase(resolve(args.usecase), args.customer_id)
    print(result["message"])
    if result["erased"]:
        print(json.dumps(result["removed"], indent=2))
        for warning in result.get("warnings", []):
            print(f"warning: {warning}")
    print(f"receipt: {result['receipt']} (what was searched, what is kept and why)")
    return 0


def _cmd_retention(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    import pandas as pd

    from fairway.privacy import enforce_retention

    as_of = args.as_of or str(pd.Period(datetime.now(UTC).strftime("%Y-%m"), freq="M") - 1)
    print(json.dumps(enforce_retention(resolve(args.usecase), as_of), indent=2))
    return 0


def _listed(values: Sequence[str] | None) -> list[str]:
    """Repeatable options that also take comma-separated lists: A,B --x C -> [A, B, C]."""
    return [item.strip() for value in values or [] for item in value.split(",") if item.strip()]


def _cmd_usecase_init(args: argparse.Namespace) -> int:
    from fairway.onboarding import init_usecase, parse_merge, parse_reference

    reference: dict[str, str] = {}
    for attribute, value in map(parse_reference, args.reference or []):
        if reference.setdefault(attribute, value) != value:
            raise ValueError(f"--reference names '{attribute}' twice ('{reference[attribute]}' and '{value}')")
    merge: dict[str, dict[str, list[str]]] = {}
    for attribute, key, values in map(parse_merge, args.merge or []):
        merge.setdefault(attribute, {}).setdefault(key, []).extend(values)
    result = init_usecase(
        args.name, args.csv, args.target, _listed(args.protected), entity=args.entity, timestamp=args.timestamp,
        positive=args.positive, legal_basis=args.legal_basis, protected_legal_basis=args.protected_legal_basis,
        retention_months=args.retention_months, owner=args.owner, description=args.description,
        start_month=args.start_month, sep=args.sep, na_values=_listed(args.na_values),
        drop_columns=_listed(args.drop_columns), reference=reference, merge=merge,
        outcome_delay_months=args.outcome_delay_months, force=args.force,
    )  # fmt: skip
    print(result.describe())
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    """Stop the champion (AI Act Art. 14(4)(e)): the service answers 503 with the reason, batch refuses."""
    import getpass

    from fairway.promotion import stop

    result = stop(resolve(args.usecase), args.reason, args.by or f"cli:{getpass.getuser()}")
    print(result["message"])
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    """The promotion ledger's chain, signatures and evidence hashes; exit 1 on any mismatch."""
    from fairway.verification import verify

    result = verify(resolve(args.usecase))
    for line in result.checked:
        print(f"ok       {line}")
    for line in result.problems:
        print(f"MISMATCH {line}")
    print(f"\n{len(result.checked)} checks passed, {len(result.problems)} mismatches")
    return 1 if result.problems else 0


def _cmd_env(args: argparse.Namespace) -> int:
    from fairway.deployment import cli_environment, shell_exports

    print(shell_exports(cli_environment(resolve(args.usecase))))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fairway", description=__doc__.splitlines()[0])
    usecase_help = "use-case name (default: $FAIRWAY_USECASE or credit_risk)"
    parser.add_argument("--usecase", default=None, help=usecase_help)
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--version", action="version", version=f"fairway {_version()}")
    # the same options after the subcommand (`fairway status --usecase X`): set only when given there
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--usecase", default=argparse.SUPPRESS, help=usecase_help)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        group: argparse._SubParsersAction, name: str, handler: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        command = group.add_parser(name, help=help, description=help, parents=[common])
        command.set_defaults(handler=handler)
        return command

    data = sub.add_parser("data", help="raw monthly snapshots").add_subparsers(dest="action", required=True)
    gen = add(data, "generate", _cmd_data_generate, "write seeded synthetic monthly snapshots (credit_risk)")
    gen.add_argument("--customers", type=int, help="customers in the first month (default from the config)")
    gen.add_argument("--months", type=int, help="number of monthly snapshots")
    gen.add_argument("--seed", type=int, help="random seed: same seed, byte-identical files")
    gen.add_argument("--drift-month", type=int, help="1-based month from which the drift episode starts")
    gen.add_argument("--start", help="first month, YYYY-MM (default: start_month of the config)")
    val = add(data, "validate", _cmd_data_validate, "validate raw months against the use case")
    val.add_argument("--month", action="append", help="YYYY-MM (repeatable; default: every month present)")

    features = sub.add_parser("features", help="the Feast feature store").add_subparsers(dest="action", required=True)
    add(features, "apply", _cmd_features_apply, "apply feature_repo/ (feast apply) for the use case")
    ingest = add(features, "ingest", _cmd_features_ingest, "write a month's offline partition and materialize it")
    ingest.add_argument("--month", required=True, help="YYYY-MM")
    add(features, "counts", _cmd_features_counts, "rows per month and view in the offline store")

    cat = sub.add_parser("catalogue", help="the data catalogue").add_subparsers(dest="action", required=True)
    for name, text in (("show", "print the catalogue"), ("check", "print the catalogue and enforce its policy")):
        add(cat, name, _cmd_catalogue, text).add_argument("--json", action="store_true")

    cfg = sub.add_parser("config", help="use-case configuration").add_subparsers(dest="action", required=True)
    for name, text in (("show", "print the validated config"), ("validate", "validate a use-case file")):
        add(cfg, name, _cmd_config, text).add_argument("path", nargs="?", help="YAML file (default: the use case)")

    add(sub, "status", _cmd_status, "champion, candidates with their gate decisions, latest metrics").add_argument(
        "--json", action="store_true"
    )
    add(sub, "monitoring", _cmd_monitoring, "monitoring history: drift, judged AUC and fairness, alerts").add_argument(
        "--json", action="store_true"
    )
    alerts = add(sub, "alerts", _cmd_alerts, "escalation alerts: performance, decline rates, rejected retrainings")
    alerts.add_argument("--json", action="store_true")
    alerts.add_argument("--accept", metavar="ALERT_ID", help="record that a person accepts the alert's risk")
    alerts.add_argument("--by", help="with --accept: who accepts it")
    alerts.add_argument("--reason", help="with --accept: why")
    serve = add(sub, "serve", _cmd_serve, "bentoml serve the packaged champion (OpenAPI page at /)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000)
    usecases = sub.add_parser("usecase", help="use cases of your own data").add_subparsers(dest="action", required=True)
    init = add(usecases, "init", _cmd_usecase_init, "a CSV as a use case with its raw monthly data (asks nothing)")
    init.add_argument("--name", required=True, help="use-case name (lower-case identifier)")
    init.add_argument("--csv", required=True, help="the CSV file (UTF-8, one header line)")
    init.add_argument("--target", required=True, help="column with the binary outcome (any two values)")
    init.add_argument("--protected", required=True, action="append", help="protected column(s): COL[,COL...]")
    init.add_argument("--entity", help="id column (default: generated row_id R0000001... in file order)")
    init.add_argument("--timestamp", help="ISO 8601 time column (default: rows spread over months in file order)")
    init.add_argument("--positive", help="the target value that is the adverse outcome the model scores")
    init.add_argument("--legal-basis", default="contract", help="GDPR Art. 6 basis of the data (default: contract)")
    init.add_argument("--protected-legal-basis", default="legal_obligation", help="basis for the protected attributes")
    init.add_argument("--retention-months", type=int, default=84, help="retention period (default: 84)")
    init.add_argument("--owner", default="model-owner", help="owner of the use case")
    init.add_argument("--description", help="intended purpose (default: a generated sentence to replace)")
    init.add_argument("--start-month", default="2024-01", help="first month when there is no --timestamp")
    init.add_argument("--sep", default=",", help="column separator (default: ,)")
    init.add_argument("--na-values", action="append", metavar="M[,M...]",
                      help="cells that mean missing besides pandas' markers (NA, N/A, NaN, null, ...) and empty cells: "
                           "the whole cell, letter case ignored (repeatable)")  # fmt: skip
    init.add_argument("--drop-columns", action="append", metavar="COL[,COL...]",
                      help="columns not to import (repeatable)")  # fmt: skip
    init.add_argument("--reference", action="append", metavar="ATTRIBUTE=VALUE",
                      help="reference group of a protected attribute, by group key or value (default: the group with "
                           "the highest rate of the favourable outcome; repeatable)")  # fmt: skip
    init.add_argument("--merge", action="append", metavar="ATTRIBUTE=VALUE,VALUE[,...]:GROUP",
                      help="join groups of a category protected attribute (by value or group key) into one group "
                           "GROUP (repeatable)")  # fmt: skip
    init.add_argument("--outcome-delay-months", type=int, default=1, metavar="N",
                      help="the outcomes of month M are delivered in month M+N, 1..36 (default: 1)")  # fmt: skip
    init.add_argument("--force", action="store_true", help="replace an existing use case of this name and its raw data")
    stopper = add(sub, "stop", _cmd_stop, "stop the champion now: the service answers 503, batch inference refuses")
    stopper.add_argument("--reason", required=True, help="why (shown in every refused answer)")
    stopper.add_argument("--by", help="who stops it (default: cli:<login name>)")
    add(sub, "verify", _cmd_verify, "check the promotion ledger: chain, signatures, evidence hashes, aliases")
    add(sub, "env", _cmd_env, "print the exports the airflow, feast, mlflow and bentoml CLIs need (eval \"$(fairway env)\")")
    review = add(sub, "review", _cmd_review, "record a person's override of a decision, or a contest's outcome")
    explain = add(sub, "explain", _cmd_explain, "a plain-language explanation of one decision for the person")
    for command in (review, explain):
        command.add_argument("--request-id", help="the decision's id (online answer's, or batch-<YYYY-MM>-<subject>)")
        command.add_argument("--customer-id", help="with --month: the customer's batch decision of that month")
        command.add_argument("--month", help="YYYY-MM, with --customer-id")
    review.add_argument("--decision", required=True, choices=["approve", "decline"], help="the decision that applies")
    review.add_argument("--by", required=True, help="who reviewed (a named person)")
    review.add_argument("--reason", required=True, help="why the decision stands or changes")
    review.add_argument("--kind", default="override", choices=["override", "contest"],
                        help="override by the deployer, or the outcome of the person's contest (default: override)")  # fmt: skip
    explain.add_argument("--out", help="write the explanation to this file (default: print it)")
    evidence = add(sub, "evidence", _cmd_evidence, "write the evidence bundle of a promoted version (index + hashes)")
    evidence.add_argument("--version", required=True, type=int, help="the model version")
    evidence.add_argument("--out", help="bundle directory (default: FAIRWAY_HOME/reports/<usecase>/evidence/...)")
    erase = add(sub, "erase", _cmd_erase, "erase one person from every store of the use case (GDPR Art. 17)")
    erase.add_argument("--customer-id", required=True, help="the person's id (entity key)")
    add(sub, "retention", _cmd_retention, "delete records and data older than their retention period").add_argument(
        "--as-of", help="YYYY-MM: enforce as of the end of this month (default: the last complete month)"
    )
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fairway")
    except PackageNotFoundError:  # include/ on the path without the package installed
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        code = int(args.handler(args))
        sys.stdout.flush()  # a reader that left shows here, not at the interpreter's exit
        return code
    except BrokenPipeError:  # `fairway status | head`: the reader left; no traceback, and nothing more to write
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a process killed by SIGPIPE reports it
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
