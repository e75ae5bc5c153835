import subprocess
import sys

import pytest
import yaml

from fairway.config import load_usecase, usecase_file
from fairway.features.catalogue import CatalogueViolation, catalogue, check
from fairway.features.store import apply_repo, get_store


def _variant(home, name: str, mutate) -> str:
    raw = yaml.safe_load(usecase_file("credit_risk").read_text())
    raw["name"] = name
    mutate(raw)
    (home / "usecases").mkdir(parents=True, exist_ok=True)
    (home / "usecases" / f"{name}.yaml").write_text(yaml.safe_dump(raw))
    apply_repo(name)
    return name


def test_default_catalogue_passes_and_lists_every_feature_with_tags(home, usecase) -> None:
    apply_repo(usecase)
    report = check(get_store(usecase))
    assert {r["feature"] for r in report.rows} == {f.name for f in usecase.features}
    by_name = {r["feature"]: r for r in report.rows}
    assert by_name["citizenship"]["protected"] == "true"
    assert by_name["citizenship"]["services"] == "fairness_audit_v1"
    assert by_name["residential_area"]["proxy_risk"] == "true"
    assert by_name["residential_area"]["justification"]
    assert by_name["income"]["legal_basis"] == "contract"
    assert len(report.model_inputs) == len(usecase.model_inputs)


def test_proxy_feature_without_justification_is_refused(home) -> None:
    def drop_justification(raw):
        for feature in raw["features"]:
            if feature["name"] == "residential_area":
                del feature["tags"]["justification"]

    name = _variant(home, "no_justification", drop_justification)
    report = catalogue(get_store(load_usecase(name)))
    assert len(report.violations) == 1
    assert "credit_model_v1" in report.violations[0]
    assert "residential_area', tagged proxy_risk" in report.violations[0]
    with pytest.raises(CatalogueViolation, match="residential_area"):
        check(get_store(load_usecase(name)))


def test_protected_attribute_as_model_input_is_refused(home) -> None:
    name = _variant(home, "protected_input", lambda raw: raw["feature_services"][0]["features"].append("citizenship"))
    with pytest.raises(CatalogueViolation, match="customer_demographics.citizenship', tagged protected"):
        check(get_store(load_usecase(name)))


def test_cli_check_fails_with_a_message(home) -> None:
    name = _variant(home, "protected_input", lambda raw: raw["feature_services"][0]["features"].append("sex"))
    result = subprocess.run(
        [sys.executable, "-m", "fairway.cli", "--usecase", name, "catalogue", "check"],
        capture_output=True, text=True, env={**__import__("os").environ, "FAIRWAY_HOME": str(home)},
    )  # fmt: skip
    assert result.returncode == 1
    assert "CATALOGUE CHECK FAILED" in result.stderr
    assert "customer_demographics.sex" in result.stderr
