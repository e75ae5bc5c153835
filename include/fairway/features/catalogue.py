"""The data catalogue and its policy, read from the applied Feast registry.

Rule: a model-input feature service may not contain a feature tagged `protected` or `proxy_risk` unless
that feature carries a `justification` tag. Protected attributes belong in the fairness-audit service,
which is used for evaluation only (GDPR Art. 5(1)(c), AI Act Art. 10(5)).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fairway.config import UseCase, resolve

if TYPE_CHECKING:  # feast costs seconds to import: only the functions that use it import it
    from feast import FeatureStore

CATALOGUE_COLUMNS = ["feature", "view", "dtype", "personal_data", "protected", "proxy_risk", "legal_basis",
                     "retention_months", "justification", "services"]  # fmt: skip


class CatalogueViolation(RuntimeError):
    """A model-input feature service holds a protected or proxy-risk feature without a justification."""


@dataclass
class CatalogueReport:
    rows: list[dict[str, str]]
    model_inputs: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def table(self) -> str:
        """A fixed-width text table; the justification text is shortened to 'yes' (see --json for it)."""
        shown = [{**r, "justification": "yes" if r["justification"].strip() else ""} for r in self.rows]
        widths = {c: max(len(c), *(len(r[c]) for r in shown)) for c in CATALOGUE_COLUMNS}
        lines = ["  ".join(c.ljust(w) for c, w in widths.items()).rstrip()]
        lines.append("  ".join("-" * w for w in widths.values()))
        lines += ["  ".join(r[c].ljust(w) for c, w in widths.items()).rstrip() for r in shown]
        return "\n".join(lines)


def catalogue(store: FeatureStore) -> CatalogueReport:
    """Every feature of every view with its catalogue tags and the services that use it, plus violations."""
    views = {v.name: v for v in store.list_feature_views()}
    services = store.list_feature_services()
    used_by: dict[tuple[str, str], list[str]] = {}
    for service in services:
        for projection in service.feature_view_projections:
            for feature in projection.features:
                used_by.setdefault((projection.name, feature.name), []).append(service.name)
    rows = []
    for view in sorted(views.values(), key=lambda v: v.name):
        for feature in view.features:
            tags = feature.tags
            rows.append({
                "feature": feature.name,
                "view": view.name,
                "dtype": str(feature.dtype),
                "personal_data": tags.get("personal_data", "?"),
                "protected": tags.get("protected", "false"),
                "proxy_risk": tags.get("proxy_risk", "false"),
                "legal_basis": tags.get("legal_basis", "?"),
                "retention_months": tags.get("retention_months", "?"),
                "justification": tags.get("justification", ""),
                "services": ",".join(sorted(used_by.get((view.name, feature.name), []))),
            })  # fmt: skip
    violations = []
    missing_tags = [
        f"{r['view']}.{r['feature']}"
        for r in rows
        if "?" in (r["personal_data"], r["legal_basis"], r["retention_months"])
    ]
    if missing_tags:
        violations.append(
            f"features without catalogue tags (personal_data, legal_basis, retention_months): {missing_tags}"
        )
    by_key = {(r["view"], r["feature"]): r for r in rows}
    model_inputs: list[str] = []
    for service in services:
        if service.tags.get("purpose") != "model_input":
            continue
        for projection in service.feature_view_projections:
            for feature in projection.features:
                model_inputs.append(f"{projection.name}.{feature.name}")
                row = by_key[(projection.name, feature.name)]
                flags = [flag for flag in ("protected", "proxy_risk") if row[flag] == "true"]
                if flags and not row["justification"].strip():
                    violations.append(
                        f"feature service '{service.name}' (model input) uses '{projection.name}.{feature.name}', "
                        f"tagged {' and '.join(flags)}, without a 'justification' tag: remove it from the service "
                        "or record why it is needed"
                    )
    if not any(s.tags.get("purpose") == "model_input" for s in services):
        violations.append("no feature service is tagged purpose=model_input")
    return CatalogueReport(rows, model_inputs, violations)


def check(store: FeatureStore) -> CatalogueReport:
    """The catalogue, or CatalogueViolation naming every offending feature (for the CLI and the DAGs)."""
    report = catalogue(store)
    if not report.ok:
        raise CatalogueViolation("data catalogue policy violated:\n  - " + "\n  - ".join(report.violations))
    return report


def check_usecase(usecase: UseCase | str | None = None) -> dict[str, int]:
    """`check` on the applied feature store of a use case, summarised for a task."""
    from fairway.features.store import get_store

    report = check(get_store(resolve(usecase)))
    return {"features": len(report.rows), "model_inputs": len(report.model_inputs)}
