"""The documents of an approved version (model documentation, gate report, instructions for use, records of
processing, impact assessment, risk register, monitoring plan) and the evidence bundle, from a real champion:
real Feast store, real MLflow registry, two candidates, the promotion ledger and two monitored months."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fairway import ledger, promotion, registry
from fairway.config import load_usecase
from fairway.documentation import OWNER_MARKER, threshold_rationale
from fairway.documents import DOCUMENTS
from fairway.fairness import group_mask
from fairway.markdown import ragged_rows, split_row, tables
from fairway.training import build_training_frame, load_frame, register_best, train_candidate
from tests.champion import feature_store, isolated_home

MONTHS = ("2024-05", "2024-06")
# the headings every document must have, in its order
SECTIONS = {
    "model_documentation": ["1. General description and intended purpose", "2. Design and development",
                            "Fairness and accuracy trade-off", "Data (Art. 10)", "Known biases of the data",
                            "Architecture and cybersecurity", "3. Performance", "4. Fairness per protected group",
                            "5. Explanations", "6. Risk management", "Why the thresholds are what they are",
                            "7. Human oversight", "8. Model card for deployers",
                            "9. Lifecycle and post-market monitoring", "10. Energy"],
    "instructions_for_use": ["1. Provider", "2. Intended purpose", "3. Limits and conditions of use",
                             "4. Accuracy and the groups where it performs worst",
                             "5. How to read a decision and its reason codes", "6. Human oversight",
                             "7. Contesting a decision", "8. Stopping the system", "9. Logs and monitoring",
                             "10. Lifetime and maintenance"],
    "records_of_processing": ["1. Controller", "2. Purposes of the processing",
                              "3. Data subjects and categories of personal data", "4. Recipients",
                              "5. Transfers to third countries", "6. Time limits for erasure",
                              "7. Technical and organisational security measures"],
    "impact_assessment": ["1. Systematic description of the processing", "2. Period and frequency of use",
                          "3. Persons and data concerned", "4. Necessity and proportionality",
                          "5. Risks to the rights and freedoms of the persons", "6. Measures",
                          "7. Consultation and sign-off"],
}  # fmt: skip
LEFTOVERS = re.compile(r"(?i:\bTODO\b|\bTBD\b|\bFIXME\b|\blorem\b|\bXXX\b)|\{[a-z_.\[\]\"']+\}|\bnan\b|\bNone\b|\bNaN\b")


@pytest.fixture(scope="module")
def version(tmp_path_factory):
    """Two candidates on one frame, the chosen one gated, approved and documented as the DAG does, two months
    scored and monitored, then its evidence bundle through the CLI."""
    from fairway.cli import main
    from fairway.inference import pin_champion, score_month
    from fairway.monitoring import check_drift, check_outcomes, record_month

    with isolated_home(tmp_path_factory, "documents-home") as home:
        uc = load_usecase("credit_risk")
        feature_store(uc, customers=1500, months=6, seed=11)
        frame = build_training_frame(uc, "2024-04", 3)
        registered = register_best(uc, [train_candidate(uc, frame, c) for c in ("baseline", "reweighing")])
        gated = promotion.gate_candidate(uc, registered["version"])
        assert gated["decision"] == "pass", gated["reasons"]
        promotion.promote(uc, gated, promotion.approval_from_response(
            {"chosen_options": ["Approve"], "params_input": {"comment": "test"},
             "responded_at": "2031-01-01T00:00:00+00:00", "responded_by_user": {"id": "t", "name": "tester"}},
            gated))  # fmt: skip
        v = str(registered["version"])
        written = promotion.document(uc, v)
        pinned = pin_champion(uc)
        for month in MONTHS:
            score_month(uc, month, pinned, f"doc-{month}")
            record_month(uc, check_drift(uc, month), check_outcomes(uc, month), f"doc-{month}")
        out = home / "bundle"
        assert main(["evidence", "--version", v, "--usecase", "credit_risk", "--out", str(out)]) == 0
        mv = registry.get_version(uc, v)
        yield {"uc": uc, "version": v, "home": home, "written": written, "bundle": out, "run_id": str(mv.run_id),
               "gate": registry.load_dict(str(mv.run_id), "gate/gate_report.json"),
               "lineage": registry.load_dict(str(mv.run_id), "lineage/training_frame.json")}  # fmt: skip


def markdown_documents(bundle: Path) -> dict[str, str]:
    """Every generated Markdown document of the bundle, by stem."""
    found = {p.stem: p.read_text() for p in sorted((bundle / "documentation").glob("*.md"))}
    found["gate_report"] = (bundle / "gate" / "gate_report.md").read_text()
    return found


def headings(text: str) -> list[str]:
    return [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]


def test_every_document_is_in_the_bundle_with_every_section(version) -> None:
    docs = markdown_documents(version["bundle"])
    assert set(docs) == {"model_documentation", "gate_report", "risk_register", "monitoring_plan", *DOCUMENTS}
    for stem, expected in SECTIONS.items():
        found = headings(docs[stem])
        missing = [s for s in expected if not any(h.startswith(s) for h in found)]
        assert missing == [], (stem, found)
        positions = [next(i for i, h in enumerate(found) if h.startswith(s)) for s in expected]
        assert positions == sorted(positions), (stem, found)


def test_no_document_holds_a_placeholder_and_every_owner_section_is_marked(version) -> None:
    for stem, text in markdown_documents(version["bundle"]).items():
        assert LEFTOVERS.findall(text) == [], stem
        # the owner's sections carry the one marker, and nothing else says "to be completed" without it
        assert text.lower().count("to be completed") == text.count(OWNER_MARKER), stem
    for stem in ("instructions_for_use", "records_of_processing", "impact_assessment"):
        text = markdown_documents(version["bundle"])[stem]
        assert text.count(OWNER_MARKER) >= 3, stem
        for line in text.splitlines():  # a marked section is a bullet or a paragraph that says what to write
            if OWNER_MARKER in line:
                assert len(line.split(OWNER_MARKER, 1)[1].strip()) > 20, (stem, line)


def test_every_markdown_table_parses_including_the_absolute_value_rules(version) -> None:
    docs = markdown_documents(version["bundle"])
    for stem, text in docs.items():
        assert ragged_rows(text) == [], stem
    for stem in ("gate_report", "model_documentation"):
        rules = next(t for t in tables(docs[stem]) if t[0] == ["rule", "subject", "value", "required", "result"])
        assert len(rules) - 1 == len(version["gate"]["rules"])
        assert all(row[3] for row in rules[1:]), rules  # no empty "required" column
        bounded = [row for row in rules[1:] if row[0] in ("statistical_parity_difference", "equal_opportunity_difference")]
        assert bounded and all(row[3] == "\\|x\\| <= 0.1" for row in bounded)
    html = (version["bundle"] / "documentation" / "model_documentation.html").read_text()
    for body in re.findall(r"<table>(.*?)</table>", html, flags=re.S):
        widths = {len(re.findall(r"<t[hd][ >]", row)) for row in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)}
        assert len(widths) == 1, body[:300]
    assert "<td>|x| &lt;= 0.1</td>" in html


def test_the_documents_carry_this_versions_numbers(version) -> None:
    docs, gate = markdown_documents(version["bundle"]), version["gate"]
    auc, accuracy = f"{gate['metrics']['auc']:.3f}", f"{gate['metrics']['accuracy']:.3f}"
    for stem in ("model_documentation", "instructions_for_use", "gate_report"):
        assert f"AUC {auc}" in docs[stem] and f"accuracy {accuracy}" in docs[stem], stem
    assert f"accuracy {accuracy} on the holdout, AUC {auc}" in docs["impact_assessment"]
    for g in gate["metrics"]["fairness"]:  # per group: accuracy, false-positive rate, average odds
        row = (f"| {g['attribute']} | {g['group']} vs {g['reference']} | {g['accuracy_group']:.3f} / "
               f"{g['accuracy_reference']:.3f} | {g['accuracy_difference']:.3f} | {g['false_positive_rate_group']:.3f} / "
               f"{g['false_positive_rate_reference']:.3f} | {g['false_positive_rate_difference']:.3f} | "
               f"{g['average_odds_difference']:.3f} |")  # fmt: skip
        for stem in ("model_documentation", "instructions_for_use", "gate_report"):
            assert row in docs[stem], (stem, row)
        assert abs(g["accuracy_group"] - g["accuracy_reference"] - g["accuracy_difference"]) < 1e-9
    assert f"gate report SHA-256 `{gate_sha(version)}`" in docs["model_documentation"]
    assert f"on the evidence with\n  SHA-256 `{gate_sha(version)}`" in docs["instructions_for_use"]


def gate_sha(version) -> str:
    return registry.get_version(version["uc"], version["version"]).tags["fairway.gate_report_sha256"]


def test_works_worst_for_names_the_lowest_accuracy_and_the_largest_error_gap(version) -> None:
    doc = markdown_documents(version["bundle"])["model_documentation"]
    fairness = [g for g in version["gate"]["metrics"]["fairness"] if g["assessable"]]
    sides = [(g["accuracy_group"], g["attribute"], g["group"]) for g in fairness]
    sides += [(g["accuracy_reference"], g["attribute"], g["reference"]) for g in fairness]
    accuracy, attribute, group = min(sides)
    assert f"Accuracy (lowest share of decisions matching the outcome): `{attribute}` = {group}, accuracy {accuracy:.3f}" in doc
    odds = max(fairness, key=lambda g: abs(g["average_odds_difference"]))
    assert f"Error rates (largest average-odds difference): `{odds['attribute']}` = {odds['group']}" in doc
    lowest = min(fairness, key=lambda g: g["disparate_impact"])
    assert f"Approvals (lowest disparate impact): `{lowest['attribute']}` = {lowest['group']}" in doc


def test_the_known_biases_are_the_outcome_rates_of_the_training_rows(version) -> None:
    uc, doc = version["uc"], markdown_documents(version["bundle"])["model_documentation"]
    train, _ = load_frame(version["lineage"])
    section = doc.split("### Known biases of the data", 1)[1].split("###", 1)[0]
    [rates] = tables(section)
    assert len(rates) - 1 == sum(len(a.groups) for a in uc.protected_attributes)
    for attr in uc.protected_attributes:
        for group, spec in attr.groups.items():
            rows = train[group_mask(train, attr.feature, spec)]
            expected = (rows[uc.label.feature] == uc.label.favourable_value).mean()
            name = group + (" (reference)" if group == attr.reference else "")
            assert [attr.feature, name, str(len(rows)), f"{expected:.3f}"] in [r[:4] for r in rates[1:]]


def test_the_tradeoff_shows_every_candidate_with_auc_and_fairness(version) -> None:
    doc = markdown_documents(version["bundle"])["model_documentation"]
    candidates = version["gate"]["candidates"]
    assert {c["candidate"] for c in candidates} == {"baseline", "reweighing"}
    [table] = [t for t in tables(doc) if t[0][0] == "candidate"]
    for c in candidates:
        row = next(r for r in table[1:] if r[0] == c["candidate"])
        assert row[2] == f"{c['auc']:.3f}" and row[5] == f"{c['fairness_distance']:.3f}"
        assert row[6] == f"{c['worst_disparate_impact']:.3f}"
    best = max(candidates, key=lambda c: c["auc"])
    assert f"`{best['candidate']}`" in doc.split("### Fairness and accuracy trade-off", 1)[1].split("###", 1)[0]


def test_every_threshold_has_its_reason_or_the_owner_marker(version) -> None:
    uc = version["uc"]
    doc = markdown_documents(version["bundle"])["model_documentation"]
    [table] = [t for t in tables(doc) if t[0][0] == "threshold"]
    assert [r[0] for r in table[1:]] == [p for p, _ in uc.thresholds()]
    for path, _ in uc.thresholds():
        row = next(r for r in table[1:] if r[0] == path)
        assert row[2] == (uc.rationale.get(path) or f"{OWNER_MARKER} why {path} is {row[1]}").strip(), path
    assert "four-fifths rule" in doc
    bare = uc.model_copy(update={"rationale": {}})
    [rows] = tables(threshold_rationale(bare))
    assert all(r[2].startswith(OWNER_MARKER) for r in rows[1:]) and len(rows) - 1 == len(uc.thresholds())


def test_architecture_and_energy_are_facts_of_the_deployment_and_the_run(version) -> None:
    doc = markdown_documents(version["bundle"])["model_documentation"]
    section = doc.split("### Architecture and cybersecurity", 1)[1].split("## 3.", 1)[0]
    assert "| model registry (MLflow) | MLFLOW_TRACKING_URI | SQLite file under FAIRWAY_HOME" in section
    assert "| pseudonymisation | key | from the deployment (FAIRWAY_PSEUDONYM_KEY)" in section  # pin_home sets it
    assert "test-key-not-secret" not in doc
    run = registry.client().get_run(version["run_id"])
    energy = doc.split("## 10. Energy", 1)[1]
    if "energy_kwh" in run.data.metrics:
        assert f"{run.data.metrics['energy_kwh']:.3g} kWh" in energy
    else:
        assert "Energy was not measured" in energy


def test_the_gate_report_carries_time_model_hash_and_frame_fingerprint(version) -> None:
    gate, uc, v = version["gate"], version["uc"], version["version"]
    when = datetime.fromisoformat(gate["generated_at"])
    assert when.utcoffset() == UTC.utcoffset(None) and abs((datetime.now(UTC) - when).total_seconds()) < 3600
    assert gate["model_sha256"] == registry.model_sha256(uc, v)
    promoted = ledger.latest(uc.model_name, v, ledger.PROMOTION)
    assert promoted is not None and promoted.payload["model_sha256"] == gate["model_sha256"]
    assert gate["dataset_fingerprint"] == version["lineage"]["fingerprint"]
    md = markdown_documents(version["bundle"])["gate_report"]
    assert f"Model files SHA-256: `{gate['model_sha256']}`" in md and version["lineage"]["fingerprint"] in md


def test_the_images_resolve_next_to_the_markdown_and_are_embedded_in_the_html(version) -> None:
    folder = Path(version["written"]["markdown"]).parent
    logged = {Path(a.path).name for a in registry.client().list_artifacts(version["run_id"], "documentation")}
    md = Path(version["written"]["markdown"]).read_text()
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", md)
    assert sorted(images) == ["fairness_by_group.png", "permutation_importance.png"]
    for name in images:
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert name in logged and (version["bundle"] / "documentation" / name).is_file()
    html = Path(version["written"]["html"]).read_text()
    sources = re.findall(r'<img[^>]*src="([^"]+)"', html)
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert [base64.b64decode(s.split(",", 1)[1]) for s in sources] == [(folder / n).read_bytes() for n in images]
    for stem in DOCUMENTS:
        assert f"{stem}.md" in logged and f"{stem}.html" in logged


def test_the_documents_are_in_the_ledger_with_their_hashes(version) -> None:
    uc, v = version["uc"], version["version"]
    entry = ledger.latest(uc.model_name, v, ledger.DOCUMENTATION)
    assert entry is not None
    for name, path in version["written"].items():
        key = Path(path).name
        assert entry.payload["files"][key] == hashlib.sha256(Path(path).read_bytes()).hexdigest(), name


def test_the_bundle_lists_every_file_with_a_hash_that_matches(version) -> None:
    bundle = version["bundle"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["version"] == version["version"] and manifest["model"] == version["uc"].model_name
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()} - {"manifest.json", "index.html"}
    assert set(listed) == on_disk
    index = (bundle / "index.html").read_text()
    for path, entry in listed.items():
        data = (bundle / path).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data), path
        assert f"<a href='{path}'>" in index and entry["sha256"] in index
    for month in MONTHS:
        assert f"monitoring/{month}/drift.html" in listed and f"monitoring/{month}/summary.json" in listed
    for name in ("risk_register", "monitoring_plan", *DOCUMENTS, "model_documentation"):
        assert f"documentation/{name}.html" in listed and f"documentation/{name}.md" in listed
    assert "gate/gate_report.json" in listed
    stored = json.loads((bundle / "gate" / "gate_report.json").read_bytes())
    assert hashlib.sha256((bundle / "gate" / "gate_report.json").read_bytes()).hexdigest() == gate_sha(version)
    assert stored["version"] == version["version"]


def test_the_bundle_holds_the_versions_ledger_entries_and_their_verification(version) -> None:
    uc, v = version["uc"], version["version"]
    found = json.loads((version["bundle"] / "ledger" / "entries.json").read_text())
    assert found["chain_verified"] is True and found["problems"] == []
    expected = [e for e in ledger.entries(uc.model_name) if e.version == v]
    assert [e["entry_hash"] for e in found["entries"]] == [e.entry_hash for e in expected]
    assert {e["action"] for e in found["entries"]} >= {ledger.GATE, ledger.APPROVAL, ledger.PROMOTION,
                                                       ledger.DOCUMENTATION}  # fmt: skip


def test_a_second_bundle_replaces_the_first_and_a_foreign_folder_is_refused(version, tmp_path) -> None:
    from fairway.evidence import bundle

    first = bundle(version["uc"], version["version"], tmp_path / "b")
    again = bundle(version["uc"], version["version"], tmp_path / "b")
    assert first["files"] == again["files"] and first["folder"] == again["folder"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="is not an evidence bundle"):
        bundle(version["uc"], version["version"], foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_split_row_reads_the_gate_rule_of_the_bundle() -> None:
    """The reader the tests rely on: an escaped pipe is part of the cell."""
    assert split_row("| sp | \\|x\\| <= 0.1 | pass |") == ["sp", "\\|x\\| <= 0.1", "pass"]


def test_fairway_verify_checks_every_document_against_the_ledger(version) -> None:
    from fairway import verification

    result = verification.verify(version["uc"])
    assert result.problems == []
    checked = " ".join(result.checked)
    for stem in ("model_documentation", *DOCUMENTS):
        assert f"documentation {stem}.html" in checked and f"documentation {stem}.md" in checked, stem
