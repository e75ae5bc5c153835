"""Use-case configuration and the paths of everything Fairway writes.

A use case is one YAML file: the entity, the timestamp, the label, every feature with its type, validation
rules and data-catalogue tags, the feature views and services, the protected attributes with their groups,
and the thresholds of the fairness gate and the drift monitor. Nothing else in Fairway names a column.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PACKAGE_DIR = Path(__file__).resolve().parent
BUILTIN_USECASES_DIR = PACKAGE_DIR / "usecases"
DEFAULT_USECASE = "credit_risk"

_IDENTIFIER = r"^[a-z_][a-z0-9_]*$"
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class ConfigError(ValueError):
    """A use-case file is missing or malformed; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CatalogueTags(_Strict):
    """Data-catalogue tags carried by every feature (and the entity) into Feast."""

    personal_data: bool
    protected: bool = False
    proxy_risk: bool = False
    legal_basis: Literal[
        "consent", "contract", "legal_obligation", "vital_interest", "public_task", "legitimate_interest", "none"
    ]
    retention_months: int = Field(gt=0, le=1200)
    justification: str | None = Field(default=None, min_length=10)

    def as_feast_tags(self) -> dict[str, str]:
        """Feast tags are strings; booleans become 'true'/'false'."""
        tags: dict[str, str] = {}
        for key, value in self.model_dump().items():
            if value is None:
                continue
            tags[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return tags


class EntitySpec(_Strict):
    name: str = Field(pattern=_IDENTIFIER)
    join_key: str = Field(pattern=_IDENTIFIER)
    description: str = Field(min_length=1)
    tags: CatalogueTags


class LabelSpec(_Strict):
    feature: str
    description: str = Field(min_length=1)
    positive_value: int | str
    favourable_value: int | str
    available_after_months: int = Field(ge=0, le=36)
    available_timestamp: str = Field(pattern=_IDENTIFIER)


class FeatureViewSpec(_Strict):
    name: str = Field(pattern=_IDENTIFIER)
    description: str = Field(min_length=1)
    ttl_days: int = Field(gt=0)
    online: bool


class FeatureSpec(_Strict):
    name: str = Field(pattern=_IDENTIFIER)
    view: str
    dtype: Literal["float", "int", "string", "bool"]
    description: str = Field(min_length=1)
    tags: CatalogueTags
    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = None
    nullable: bool = False

    @model_validator(mode="after")
    def _rules_fit_dtype(self) -> FeatureSpec:
        if self.allowed is not None and self.dtype != "string":
            raise ValueError(f"'allowed' is only for string features, {self.name} is {self.dtype}")
        if (self.min is not None or self.max is not None) and self.dtype not in ("float", "int"):
            raise ValueError(f"'min'/'max' are only for numeric features, {self.name} is {self.dtype}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max} for {self.name}")
        return self


class FeatureServiceSpec(_Strict):
    name: str = Field(pattern=r"^[a-z_][a-z0-9_]*_v[0-9]+$")
    purpose: Literal["model_input", "fairness_audit", "labels"]
    description: str = Field(min_length=1)
    features: list[str] = Field(min_length=1)


class GroupSpec(_Strict):
    values: list[str] | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> GroupSpec:
        if (self.values is None) == (self.min is None and self.max is None):
            raise ValueError("a group is defined either by 'values' or by 'min'/'max'")
        return self


class ProtectedAttributeSpec(_Strict):
    feature: str
    reference: str
    groups: dict[str, GroupSpec] = Field(min_length=2)

    @model_validator(mode="after")
    def _reference_is_a_group(self) -> ProtectedAttributeSpec:
        if self.reference not in self.groups:
            raise ValueError(f"reference group '{self.reference}' is not one of {sorted(self.groups)}")
        return self


class GateSpec(_Strict):
    disparate_impact_min: float = Field(gt=0, le=1)
    disparate_impact_max: float = Field(ge=1)
    statistical_parity_max_abs: float = Field(ge=0, le=1)
    equal_opportunity_max_abs: float = Field(ge=0, le=1)
    auc_min: float = Field(ge=0.5, le=1)
    max_auc_drop_vs_champion: float = Field(ge=0, le=1)
    approval_mode: Literal["human"] = "human"
    decision_threshold: float = Field(gt=0, lt=1)
    # a group (or its reference) with fewer rows than this, or without both outcomes, is not assessable: its
    # metrics are reported, no rule is applied to it (fairway.gate)
    min_group_rows: int = Field(default=30, ge=1)

    @field_validator("approval_mode", mode="before")
    @classmethod
    def _human_only(cls, value: Any) -> Any:
        if value != "human":
            raise ValueError(
                f"approval_mode {value!r} cannot be set by a use-case config: a high-risk model is approved by a "
                "person; automatic approval exists only where the deployment sets FAIRWAY_APPROVAL_MODE=auto"
            )
        return value


class DriftSpec(_Strict):
    share_of_drifted_columns_max: float = Field(gt=0, le=1)
    sample_rows: int = Field(gt=0)
    fairness_retrain_on_breach: bool = True
    retrain_cooldown_months: int = Field(default=2, ge=0)


class EscalationSpec(_Strict):
    """When monitoring raises an alert (fairway.escalation): judged AUC or accuracy more than the margin below the
    level documented for the scoring version (its gate evaluation on the holdout)."""

    auc_margin: float = Field(default=0.05, ge=0, le=1)
    accuracy_margin: float = Field(default=0.05, ge=0, le=1)


class MonitoringSpec(_Strict):
    escalation: EscalationSpec = Field(default_factory=EscalationSpec)


class SyntheticSpec(_Strict):
    customers: int = Field(gt=0)
    months: int = Field(gt=0, le=240)
    seed: int = 0
    drift_month: int | None = Field(default=None, ge=1)
    monthly_churn: float = Field(ge=0, lt=1)


class EnergySpec(_Strict):
    """Energy and emissions of each training candidate and batch month (fairway.energy, CodeCarbon offline)."""

    enabled: bool = True
    # ISO 3166-1 alpha-3 code of the country whose electricity mix gives the emissions per kWh
    country_iso_code: str = Field(default="DEU", pattern=r"^[A-Z]{3}$")


class UseCase(_Strict):
    """One use case: validated as a whole, cross-references included."""

    name: str = Field(pattern=_IDENTIFIER)
    description: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    model_name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    start_month: str
    entity: EntitySpec
    event_timestamp: str = Field(pattern=_IDENTIFIER)
    label: LabelSpec
    feature_views: list[FeatureViewSpec] = Field(min_length=1)
    features: list[FeatureSpec] = Field(min_length=1)
    feature_services: list[FeatureServiceSpec] = Field(min_length=1)
    protected_attributes: list[ProtectedAttributeSpec] = Field(min_length=1)
    gate: GateSpec
    drift: DriftSpec
    materialize_overlap_days: int = Field(ge=0, le=31)
    synthetic: SyntheticSpec | None = None
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    energy: EnergySpec = Field(default_factory=EnergySpec)
    # why a threshold is what it is, in the provider's words, keyed by its path: {"gate.auc_min": "..."}; the
    # documentation prints it beside the threshold and marks a threshold without one for the provider to complete
    rationale: dict[str, str] = Field(default_factory=dict)

    @field_validator("start_month")
    @classmethod
    def _month_format(cls, value: str) -> str:
        if not _MONTH.match(value):
            raise ValueError(f"'{value}' is not a month in the form YYYY-MM")
        return value

    @model_validator(mode="after")
    def _cross_references(self) -> UseCase:
        views = [v.name for v in self.feature_views]
        features = [f.name for f in self.features]
        for kind, names in (("feature view", views), ("feature", features)):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"duplicate {kind} names: {dupes}")
        reserved = {self.entity.join_key, self.event_timestamp, self.label.available_timestamp}
        clash = reserved & set(features)
        if clash:
            raise ValueError(f"feature names clash with the entity key or timestamps: {sorted(clash)}")
        for feature in self.features:
            if feature.view not in views:
                raise ValueError(f"feature '{feature.name}' names unknown view '{feature.view}'")
        for service in self.feature_services:
            unknown = [f for f in service.features if f not in features]
            if unknown:
                raise ValueError(f"feature service '{service.name}' names unknown features {unknown}")
        for purpose in ("model_input", "fairness_audit", "labels"):
            count = sum(1 for s in self.feature_services if s.purpose == purpose)
            if count != 1:
                raise ValueError(f"exactly one feature service with purpose '{purpose}' is needed, found {count}")
        if self.label.feature not in features:
            raise ValueError(f"label feature '{self.label.feature}' is not a feature")
        for attr in self.protected_attributes:
            if attr.feature not in features:
                raise ValueError(f"protected attribute '{attr.feature}' is not a feature")
            if not self.feature(attr.feature).tags.protected:
                raise ValueError(f"protected attribute '{attr.feature}' must carry the tag protected: true")
        label_view = self.feature(self.label.feature).view
        if any(f.view == label_view and f.name != self.label.feature for f in self.features):
            raise ValueError(f"the label view '{label_view}' must hold the label only")
        known = dict(self.thresholds())
        for key, text in self.rationale.items():
            if key not in known:
                raise ValueError(f"rationale for unknown threshold '{key}'; the thresholds are: {', '.join(known)}")
            if len(text.strip()) < 10:
                raise ValueError(f"rationale of '{key}' is too short to say why (10 characters at least)")
        return self

    def thresholds(self) -> list[tuple[str, float | int | bool]]:
        """Every threshold of the gate, the drift monitor and the escalation, as (path, value), in config order."""
        found: list[tuple[str, float | int | bool]] = []
        for prefix, spec in (("gate", self.gate), ("drift", self.drift),
                             ("monitoring.escalation", self.monitoring.escalation)):  # fmt: skip
            found += [(f"{prefix}.{name}", value) for name, value in spec.model_dump().items()
                      if isinstance(value, int | float) and not isinstance(value, bool)]  # fmt: skip
        return found

    # --- derived views of the config -------------------------------------------------------------

    def feature(self, name: str) -> FeatureSpec:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    def view(self, name: str) -> FeatureViewSpec:
        for view in self.feature_views:
            if view.name == name:
                return view
        raise KeyError(name)

    def service(self, purpose: str) -> FeatureServiceSpec:
        return next(s for s in self.feature_services if s.purpose == purpose)

    def features_of_view(self, view: str) -> list[FeatureSpec]:
        return [f for f in self.features if f.view == view]

    @property
    def label_view(self) -> str:
        return self.feature(self.label.feature).view

    @property
    def model_inputs(self) -> list[str]:
        return list(self.service("model_input").features)

    @property
    def protected_features(self) -> list[str]:
        return [a.feature for a in self.protected_attributes]

    @property
    def snapshot_features(self) -> list[FeatureSpec]:
        """Features delivered in the monthly snapshot (everything but the label)."""
        return [f for f in self.features if f.name != self.label.feature]


def _format_validation_error(source: str, error: ValidationError) -> str:
    lines = [f"{source}: {error.error_count()} problem(s) in the use-case config"]
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        lines.append(f"  - {where}: {item['msg']}")
    return "\n".join(lines)


def parse_usecase(data: Any, source: str = "<config>") -> UseCase:
    """Validate a parsed YAML document; errors name the file and the field path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the use-case config must be a mapping, got {type(data).__name__}")
    try:
        return UseCase.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(source, exc)) from None


def usecase_dirs() -> list[Path]:
    """Where use-case files are looked up: $FAIRWAY_USECASES_DIR, the config a bento carries beside this package
    (CARRIED_USECASES_DIR, present only in a bento: the service serves with the config it was packaged with),
    FAIRWAY_HOME/usecases, then the built-ins."""
    dirs = []
    if os.environ.get("FAIRWAY_USECASES_DIR"):
        dirs.append(Path(os.environ["FAIRWAY_USECASES_DIR"]))
    if CARRIED_USECASES_DIR.is_dir():
        dirs.append(CARRIED_USECASES_DIR)
    dirs.append(paths().home / "usecases")
    dirs.append(BUILTIN_USECASES_DIR)
    return dirs


USECASE_NAME = _IDENTIFIER


def usecase_file(name: str) -> Path:
    """The file of a use case named `name`, looked up in the configured use-case folders only: a name, never a
    path (a DAG's form or a REST call must not point the gate at a file of its own)."""
    if not re.match(USECASE_NAME, name or ""):
        raise ConfigError(f"{name!r} is not a use-case name (lower-case letters, digits and _): use cases are named, "
                          "never given as paths, and looked up in " + ", ".join(str(d) for d in usecase_dirs()))  # fmt: skip
    for directory in usecase_dirs():
        path = directory / f"{name}.yaml"
        if path.is_file():
            return path
    searched = ", ".join(str(d) for d in usecase_dirs())
    raise ConfigError(f"no use case named '{name}' (looked in {searched})")


def load_usecase(name: str | None = None) -> UseCase:
    """Load and validate a use case by name. Default: $FAIRWAY_USECASE, else credit_risk."""
    return load_usecase_file(usecase_file(name or current_usecase_name()))


def load_usecase_file(path: Path | str) -> UseCase:
    """Validate a use-case file given explicitly (`fairway usecase check --path`, onboarding's template); the
    DAGs and the service only ever load use cases by name."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"use-case file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_usecase(data, source=str(path))


def current_usecase_name() -> str:
    return os.environ.get("FAIRWAY_USECASE", DEFAULT_USECASE)


# --- paths ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Paths:
    """Every byte Fairway makes lives below `home` (FAIRWAY_HOME, default ./.fairway)."""

    home: Path

    @cached_property
    def raw(self) -> Path:
        return self.home / "data" / "raw"

    @cached_property
    def offline(self) -> Path:
        return self.home / "data" / "offline"

    @cached_property
    def feast(self) -> Path:
        return self.home / "feast"

    @cached_property
    def mlflow(self) -> Path:
        return self.home / "mlflow"

    @cached_property
    def bentoml(self) -> Path:
        return self.home / "bentoml"

    @cached_property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @cached_property
    def reports(self) -> Path:
        return self.home / "reports"

    @cached_property
    def records(self) -> Path:
        return self.home / "records"

    def raw_month(self, usecase: str, month: str) -> Path:
        return self.raw / usecase / month

    def offline_view(self, usecase: str, view: str) -> Path:
        return self.offline / usecase / view

    def feast_project(self, usecase: str) -> Path:
        return self.feast / usecase


def paths() -> Paths:
    """Paths under FAIRWAY_HOME, resolved to an absolute directory."""
    from fairway import settings

    return Paths(settings.home())


PROJECT_DIR = PACKAGE_DIR.parent.parent
# a bento carries the feature repo and the use case's config beside the package (fairway.packaging.build_context)
CARRIED_USECASES_DIR = PACKAGE_DIR.parent / "usecases"
_CARRIED_REPO = PACKAGE_DIR.parent / "feature_repo"
FEATURE_REPO_DIR = Path(os.environ.get("FAIRWAY_FEATURE_REPO") or (
    _CARRIED_REPO if _CARRIED_REPO.is_dir() and not (PROJECT_DIR / "feature_repo").is_dir()
    else PROJECT_DIR / "feature_repo"
))  # fmt: skip


def month_str(value: Any) -> str:
    """'YYYY-MM' of a date, datetime or pendulum value, or a 'YYYY-MM[-DD...]' string."""
    if isinstance(value, str):
        month = value[:7]
    else:
        month = f"{value.year:04d}-{value.month:02d}"
    if not _MONTH.match(month):
        raise ValueError(f"'{value}' is not a month (YYYY-MM)")
    return month


def resolve(usecase: UseCase | str | None) -> UseCase:
    """A use case from a loaded config, a name or None (the current one): what tasks pass is a name."""
    return usecase if isinstance(usecase, UseCase) else load_usecase(usecase)
