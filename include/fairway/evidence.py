"""The evidence bundle of one model version (`fairway evidence --version N`): one directory an auditor can take
away, with an HTML index that links every file and gives its SHA-256, and a manifest.json with the same.

The bundle holds, for the version: the model documentation (with its images), the gate report, the instructions
for use, the records of processing and the impact assessment (fairway.documents; written now when the version's
run does not have them yet), the risk register and the post-market monitoring plan (fairway.escalation), the drift
and fairness reports of every month the version scored and was monitored for, and the version's entries of the
promotion ledger (with the result of checking the chain and the signatures). Copies are taken from the version's
MLflow run (what was logged when it was promoted) and from FAIRWAY_HOME's reports; nothing is changed there.
"""

from __future__ import annotations

import hashlib
import html
import json
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fairway.config import UseCase, resolve
from fairway.documentation import render_html

MONTH_FILES = {"drift.html": "drift report (Evidently)", "fairness_by_group.png": "fairness by group, judged month",
               "summary.json": "monitoring summary (drift, judged outcomes, retraining reasons, alerts)"}  # fmt: skip


@dataclass(frozen=True)
class BundleFile:
    path: str  # relative to the bundle
    description: str
    sha256: str
    bytes: int


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _documentation(uc: UseCase, version: str, out: Path) -> dict[str, str]:
    """The version's documentation folder of its MLflow run, into out/documentation; the documents of
    fairway.documents are written first when the run has none (versions promoted before they existed)."""
    from fairway import registry
    from fairway.documents import DOCUMENTS, write_documents

    run_id = str(registry.get_version(uc, version).run_id)
    logged = {Path(a.path).name for a in registry.client().list_artifacts(run_id, "documentation")}
    if "model_documentation.html" not in logged:
        raise RuntimeError(f"{uc.model_name} v{version} has no documentation: only promoted versions have one")
    if any(f"{stem}.html" not in logged for stem in DOCUMENTS):
        write_documents(uc, version)
    registry.download(run_id, "documentation", out)
    (out / "gate").mkdir(parents=True, exist_ok=True)
    for name in ("gate_report.json", "gate_report.md"):
        registry.download(run_id, f"gate/{name}", out / "gate")
    described = {"documentation/model_documentation.md": "technical documentation and model card (Annex IV)",
                 "documentation/model_documentation.html": "technical documentation and model card (Annex IV), HTML",
                 "gate/gate_report.json": "fairness gate report (the evidence the approver signed off)",
                 "gate/gate_report.md": "fairness gate report, readable"}  # fmt: skip
    for stem, title in DOCUMENTS.items():
        described[f"documentation/{stem}.md"] = title
        described[f"documentation/{stem}.html"] = f"{title}, HTML"
    return described


def _escalation(uc: UseCase, version: str, out: Path) -> dict[str, str]:
    """The risk register and the post-market monitoring plan, as they stand now."""
    from fairway.escalation import monitoring_plan_markdown, risk_register_markdown

    described = {}
    for stem, title, text in (
        ("risk_register", "risk register (AI Act Art. 9)", risk_register_markdown(uc, version)),
        ("monitoring_plan", "post-market monitoring plan and incident procedure (Art. 72, 73)",
         monitoring_plan_markdown(uc, version)),
    ):  # fmt: skip
        folder = out / "documentation"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.md").write_text(text)
        (folder / f"{stem}.html").write_text(render_html(text, f"{uc.model_name} v{version}: {title}"))
        described[f"documentation/{stem}.md"] = title
        described[f"documentation/{stem}.html"] = f"{title}, HTML"
    return described


def _monitoring(uc: UseCase, version: str, out: Path) -> dict[str, str]:
    from fairway.documents import monitoring_table
    from fairway.monitoring import month_dir

    _, months = monitoring_table(uc, version)
    described = {}
    for month in months:
        for name, what in MONTH_FILES.items():
            source = month_dir(uc, month) / name
            if source.is_file():
                target = out / "monitoring" / month / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
                described[f"monitoring/{month}/{name}"] = f"{what}, {month}"
    return described


def _ledger(uc: UseCase, version: str, out: Path) -> dict[str, str]:
    from fairway import ledger

    found = ledger.entries(uc.model_name)
    problems = ledger.verify_chain(ledger.entries())
    mine = [asdict(e) for e in found if e.version == str(version)]
    path = out / "ledger" / "entries.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model": uc.model_name, "version": str(version), "chain_verified": not problems,
                                "problems": problems, "entries": mine}, indent=2, sort_keys=True, default=str))  # fmt: skip
    return {"ledger/entries.json": f"promotion ledger entries of v{version} ({len(mine)}; chain and signatures "
            f"{'verified' if not problems else 'NOT verified: ' + '; '.join(problems)})"}  # fmt: skip


def _other_documentation(out: Path, described: dict[str, str]) -> dict[str, str]:
    """The rest of the run's documentation folder: the figures the documents show, anything else logged there."""
    found = {}
    for path in sorted((out / "documentation").iterdir()):
        rel = f"documentation/{path.name}"
        if path.is_file() and rel not in described:
            found[rel] = (
                "figure of the model documentation" if path.suffix == ".png" else "logged with the documentation"
            )
    return found


def index_html(uc: UseCase, version: str, files: list[BundleFile], generated: str) -> str:
    rows = "".join(f"<tr><td><a href='{html.escape(f.path)}'>{html.escape(f.path)}</a></td>"
                   f"<td>{html.escape(f.description)}</td><td>{f.bytes}</td><td><code>{f.sha256}</code></td></tr>"
                   for f in files)  # fmt: skip
    title = f"Evidence bundle: {uc.model_name} v{version} ({uc.name})"
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2rem;color:#1f2933}table{border-collapse:collapse;"
            "font-size:0.85rem}td,th{border:1px solid #cbd2d9;padding:0.25rem 0.5rem;text-align:left}"
            "th{background:#f0f4f8}code{font-size:0.75rem}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>Generated {html.escape(generated)} (UTC) by Fairway. Every file of "
            "the bundle with its SHA-256; <a href='manifest.json'>manifest.json</a> lists the same.</p>"
            f"<table><tr><th>file</th><th>what</th><th>bytes</th><th>SHA-256</th></tr>{rows}</table>"
            "</body></html>")  # fmt: skip


def bundle(usecase: UseCase | str | None, version: str, out: Path | None = None) -> dict[str, Any]:
    """Write the evidence bundle of a promoted version into `out` (default FAIRWAY_HOME/reports/<usecase>/evidence/
    <model>-v<version>, replaced when it exists); returns its folder, index, manifest and file count."""
    from fairway.config import paths

    uc = resolve(usecase)
    version = str(version)
    folder = (out or paths().reports / uc.name / "evidence" / f"{uc.model_name}-v{version}").resolve()
    if folder.exists() and any(folder.iterdir()):
        if not (folder / "manifest.json").is_file():
            raise FileExistsError(f"{folder} exists and is not an evidence bundle: choose an empty or new --out")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    described = _documentation(uc, version, folder)
    described |= _escalation(uc, version, folder)
    described |= _other_documentation(folder, described)
    described |= _monitoring(uc, version, folder)
    described |= _ledger(uc, version, folder)
    files = [BundleFile(rel, what, _sha256(folder / rel), (folder / rel).stat().st_size)
             for rel, what in sorted(described.items())]  # fmt: skip
    unlisted = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()
                      and str(p.relative_to(folder)) not in described)  # fmt: skip
    if unlisted:
        raise RuntimeError(f"files in the bundle without a description: {unlisted}")
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    manifest = {"usecase": uc.name, "model": uc.model_name, "version": version, "generated_at": generated,
                "files": [asdict(f) for f in files]}  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    (folder / "index.html").write_text(index_html(uc, version, files, generated))
    return {"folder": str(folder), "index": str(folder / "index.html"), "manifest": str(folder / "manifest.json"),
            "files": len(files)}  # fmt: skip
