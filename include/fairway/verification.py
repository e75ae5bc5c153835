"""Trust, checked before use: the version about to score is the promotion ledger's, and its evidence is intact.

- `scoring_champion` (batch inference): the ledger's chain verifies, its champion is not stopped, the MLflow
  alias points at it, and its gate report still hashes to what the ledger recorded. The model is then loaded
  through `load_scoring_model`, which hashes the downloaded files against the ledger before loading them.
- `approved_model` (monitoring): a version that was an approved champion at some time, with intact files.
- `serving_refusal` (the service, at start and every few seconds): why the packaged version must not answer,
  or None.
- `verify` (`fairway verify`): the whole chain, every signature and every evidence hash (gate reports,
  documentation, model files) and the aliases; each mismatch named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairway import ledger, registry
from fairway.config import UseCase, resolve


class ChampionRefused(RuntimeError):
    """The version must not score: stopped, not the ledger's champion, or its evidence does not match."""


def _state(uc: UseCase) -> ledger.ChampionState:
    try:
        return ledger.state(uc.model_name)
    except ledger.LedgerError as error:
        raise ChampionRefused(str(error)) from None


def _check_gate_report(uc: UseCase, version: str, entry: ledger.Entry) -> None:
    evidence = entry.payload["gate_report_sha256"]
    stored = registry.artifact_sha256(str(entry.payload.get("run_id") or registry.get_version(uc, version).run_id),
                                      registry.gate_report_path(evidence))  # fmt: skip
    if stored != evidence:
        raise ChampionRefused(f"{uc.model_name} v{version}: the gate report approved for it "
                              f"({evidence[:16]}…) was changed or removed in MLflow")  # fmt: skip


def scoring_champion(usecase: UseCase | str | None) -> dict[str, str]:
    """The version that may score now, with the model files' SHA-256 its loading must match."""
    uc = resolve(usecase)
    state = _state(uc)
    if state.version is None or state.since is None:
        raise ChampionRefused(f"model '{uc.model_name}' has no champion in the promotion ledger: train, gate and "
                              "approve a model first")  # fmt: skip
    if state.stopped is not None:
        raise ChampionRefused(f"{uc.model_name} v{state.version}: {state.stop_reason()}")
    alias = registry.version_by_alias(uc, registry.CHAMPION)
    if alias is None or str(alias.version) != state.version:
        raise ChampionRefused(
            f"MLflow's alias '{registry.CHAMPION}' points at {'v' + str(alias.version) if alias else 'nothing'}, the "
            f"promotion ledger's champion is v{state.version}: the alias was changed outside Fairway "
            "(run `fairway verify`)"
        )
    _check_gate_report(uc, state.version, state.since)
    return {"model": uc.model_name, "version": state.version, "run_id": str(alias.run_id),
            "model_sha256": state.since.payload["model_sha256"], "ledger_entry": str(state.since.seq)}  # fmt: skip


def still_allowed(usecase: UseCase | str | None, pinned: dict[str, str]) -> None:
    """Raise when the pinned version must not score any more (stopped, or no longer an approved version)."""
    uc = resolve(usecase)
    state = _state(uc)
    if state.stopped is not None:
        raise ChampionRefused(f"{uc.model_name} v{state.version}: {state.stop_reason()}")
    if pinned["version"] not in state.approved_versions:
        raise ChampionRefused(f"{uc.model_name} v{pinned['version']} is not an approved champion in the ledger")


def load_scoring_model(usecase: UseCase | str | None, pinned: dict[str, str]) -> Any:
    """The pinned version's model, loaded from files that hash to the ledger's record."""
    uc = resolve(usecase)
    try:
        return registry.load_model(uc, pinned["version"], pinned["model_sha256"])
    except registry.ModelTampered as error:
        raise ChampionRefused(str(error)) from None


def approved_model(usecase: UseCase | str | None, version: str) -> Any:
    """A version that was an approved champion at some time (monitoring judges what it decided), loaded from
    files that hash to its ledger record."""
    uc = resolve(usecase)
    entry = _state(uc).approved_versions.get(str(version))
    if entry is None:
        raise ChampionRefused(f"{uc.model_name} v{version} was never an approved champion in the promotion ledger")
    try:
        return registry.load_model(uc, str(version), entry.payload["model_sha256"])
    except registry.ModelTampered as error:
        raise ChampionRefused(str(error)) from None


def comparison_champion(usecase: UseCase | str | None) -> Any:
    """The serving champion's model, for training's same-holdout comparison; None when nothing serves."""
    uc = resolve(usecase)
    state = _state(uc)
    if state.serving is None or state.since is None:
        return None
    return registry.load_model(uc, state.serving, state.since.payload["model_sha256"])


def serving_refusal(usecase: UseCase | str | None, version: str, model_folder: Path | None) -> str | None:
    """Why the service's packaged version must not answer now (None: it may). With `model_folder`, its files are
    hashed against the ledger (done at start; the periodic check passes None)."""
    uc = resolve(usecase)
    try:
        state = ledger.state(uc.model_name)
    except ledger.LedgerError as error:
        return str(error)
    if state.stopped is not None and state.version == str(version):
        return state.stop_reason()
    if state.serving != str(version) or state.since is None:
        current = f"v{state.serving}" if state.serving else "none"
        return (f"this service holds {uc.model_name} v{version}, the promotion ledger's champion is {current}: it "
                "switches to it once it is packaged in this service's BentoML store (else restart the service with "
                "the champion's bento)")  # fmt: skip
    if model_folder is not None:
        if registry.model_files_sha256(model_folder) != state.since.payload["model_sha256"]:
            return f"{uc.model_name} v{version}: the packaged model files are not the ones the ledger approved"
        try:
            _check_gate_report(uc, str(version), state.since)
        except ChampionRefused as error:
            return str(error)
    return None


@dataclass
class Verification:
    """What `fairway verify` checked and what it found wrong."""

    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str, problem: str) -> None:
        (self.checked if ok else self.problems).append(what if ok else problem)


def _verify_documentation(uc: UseCase, entry: ledger.Entry, result: Verification) -> None:
    run_id = str(registry.get_version(uc, entry.version).run_id)
    for name, expected in entry.payload["files"].items():
        found = registry.artifact_sha256(run_id, f"documentation/{name}")
        result.check(found == expected, f"v{entry.version} documentation {name}",
                     f"#{entry.seq}: v{entry.version}'s documentation/{name} does not match the ledger (changed or removed)")  # fmt: skip


def _verify_model(uc: UseCase, entries: list[ledger.Entry], result: Verification) -> None:
    state = ledger.replay(uc.model_name, entries)
    latest: dict[str, ledger.Entry] = {}
    for entry in entries:
        if entry.model_name != uc.model_name:
            continue
        if entry.action == ledger.GATE:
            latest[entry.version] = entry
            run_id = str(registry.get_version(uc, entry.version).run_id)
            evidence = entry.payload["gate_report_sha256"]
            stored = registry.artifact_sha256(run_id, registry.gate_report_path(evidence))
            result.check(stored == evidence, f"#{entry.seq} v{entry.version} gate report",
                         f"#{entry.seq}: v{entry.version}'s gate report {evidence[:16]}… was changed or removed")  # fmt: skip
        elif entry.action in (ledger.PROMOTION, ledger.ROLLBACK):
            found = registry.model_sha256(uc, entry.version)
            result.check(found == entry.payload["model_sha256"], f"#{entry.seq} v{entry.version} model files",
                         f"#{entry.seq}: v{entry.version}'s model files changed since its {entry.action}")  # fmt: skip
        elif entry.action == ledger.DOCUMENTATION and entry == ledger.latest(uc.model_name, entry.version,
                                                                               ledger.DOCUMENTATION, entries):  # fmt: skip
            _verify_documentation(uc, entry, result)
    for version, entry in latest.items():
        mv = registry.get_version(uc, version)
        result.check(mv.tags.get("fairway.gate_decision") == entry.payload["decision"],
                     f"v{version} gate tag mirrors the ledger",
                     f"v{version}: MLflow tag fairway.gate_decision={mv.tags.get('fairway.gate_decision')!r}, the "
                     f"ledger's gate decision is {entry.payload['decision']!r} (forged tag)")  # fmt: skip
    alias = registry.version_by_alias(uc, registry.CHAMPION)
    shown = None if alias is None else str(alias.version)
    result.check(shown == state.serving, f"alias {registry.CHAMPION} mirrors the ledger ({shown or 'none'})",
                 f"MLflow alias '{registry.CHAMPION}' points at {shown or 'nothing'}, the ledger's serving champion is "
                 f"{state.serving or 'none'}{' (' + state.stop_reason() + ')' if state.stopped else ''}")  # fmt: skip


def verify(usecase: UseCase | str | None) -> Verification:
    """Check the whole chain, every signature, and the use case's evidence hashes and alias."""
    uc = resolve(usecase)
    result = Verification()
    found = ledger.entries()
    problems = ledger.verify_chain(found)
    result.problems += problems
    if not problems:
        seq, head = ledger.head()
        result.checked.append(f"chain of {len(found)} entries, every signature (head #{seq} {head})")
    _verify_model(uc, found, result)
    return result
