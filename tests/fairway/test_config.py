from pathlib import Path

import pytest
import yaml

from fairway.config import ConfigError, load_usecase, load_usecase_file, parse_usecase, usecase_file


def _raw() -> dict:
    return yaml.safe_load(usecase_file("credit_risk").read_text())


def test_default_usecase_loads_and_cross_references(usecase) -> None:
    assert usecase.name == "credit_risk"
    assert usecase.entity.join_key == "customer_id"
    assert set(usecase.protected_features) == {"sex", "age", "citizenship"}
    assert usecase.service("model_input").name == "credit_model_v1"
    assert usecase.service("fairness_audit").name == "fairness_audit_v1"
    assert not set(usecase.model_inputs) & set(usecase.protected_features)
    assert usecase.label_view == "customer_labels"


def test_wrong_type_names_the_field() -> None:
    raw = _raw()
    raw["features"][1]["dtype"] = "decimal"
    with pytest.raises(ConfigError, match=r"features\.1\.dtype"):
        parse_usecase(raw, "bad.yaml")


def test_missing_threshold_names_the_field() -> None:
    raw = _raw()
    del raw["gate"]["auc_min"]
    with pytest.raises(ConfigError, match=r"gate\.auc_min: Field required"):
        parse_usecase(raw, "bad.yaml")


def test_unknown_key_is_refused() -> None:
    raw = _raw()
    raw["entity"]["joinkey"] = "x"
    with pytest.raises(ConfigError, match=r"entity\.joinkey: Extra inputs are not permitted"):
        parse_usecase(raw, "bad.yaml")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["feature_services"][0]["features"].append("shoe_size"), "unknown features \\['shoe_size'\\]"),
        (lambda r: r["protected_attributes"][0].update(feature="income"), "must carry the tag protected"),
        (lambda r: r["protected_attributes"][0].update(reference="other"), "reference group 'other'"),
        (lambda r: r["features"][0].update(view="nowhere"), "unknown view 'nowhere'"),
        (lambda r: r.update(start_month="2024-13"), "start_month"),
        (lambda r: r["features"][0]["tags"].pop("legal_basis"), r"features\.0\.tags\.legal_basis"),
    ],
)
def test_cross_reference_errors_are_named(mutate, message: str) -> None:
    raw = _raw()
    mutate(raw)
    with pytest.raises(ConfigError, match=message):
        parse_usecase(raw, "bad.yaml")


def test_yaml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_usecase_file(broken)
    with pytest.raises(ConfigError, match="no use case named 'nope'"):
        load_usecase("nope")


def test_usecase_found_in_fairway_home(home: Path) -> None:
    raw = _raw()
    raw["name"] = "my_copy"
    (home / "usecases").mkdir(parents=True)
    (home / "usecases" / "my_copy.yaml").write_text(yaml.safe_dump(raw))
    assert load_usecase("my_copy").name == "my_copy"


@pytest.mark.parametrize("given", ["/tmp/loose.yaml", "loose.yaml", "../credit_risk", "usecases/credit_risk", "Credit"])
def test_a_path_or_odd_name_is_never_a_use_case(home: Path, given: str) -> None:
    """A DAG form or REST call that passes a path (e.g. a copy of the config with loose thresholds) is refused
    before anything is read from disk, even when that file exists."""
    raw = _raw()
    (home / "loose.yaml").parent.mkdir(parents=True, exist_ok=True)
    (home / "loose.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="is not a use-case name"):
        load_usecase(given if given != "loose.yaml" else str(home / "loose.yaml"))


def test_a_config_cannot_switch_its_gate_to_automatic_approval() -> None:
    raw = _raw()
    raw["gate"]["approval_mode"] = "auto"
    with pytest.raises(ConfigError, match="FAIRWAY_APPROVAL_MODE=auto"):
        parse_usecase(raw, "loose.yaml")
