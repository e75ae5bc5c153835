"""fairway.energy for real: CodeCarbon's offline tracker around real candidate fits and a real batch month, logged to
a real MLflow registry (SQLite); tracking disabled logs nothing; a tracker that fails does not fail the work."""

from __future__ import annotations

import pytest

from fairway import energy, registry
from fairway.config import EnergySpec, load_usecase
from fairway.inference import pin_champion, score_month
from fairway.training import build_training_frame, train_candidate
from tests.champion import feature_store, isolated_home, make_champion

ENERGY_TAGS = {
    "fairway.energy_tool",
    "fairway.energy_status",
    "fairway.energy_method",
    "fairway.energy_country_iso_code",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A champion trained as the training DAG trains it (its candidate's fit and evaluation tracked)."""
    with isolated_home(tmp_path_factory, "energy-home") as home:
        uc = load_usecase("credit_risk")
        feature_store(uc, customers=1500, months=6, seed=11)
        version = make_champion(uc, "2024-04", 3)
        yield {"uc": uc, "home": home, "version": version, "frame": build_training_frame(uc, "2024-04", 3)}


def _run(run_id: str):  # noqa: ANN202
    return registry.client().get_run(run_id).data


def test_a_candidate_fit_and_evaluation_log_their_energy_on_the_candidate_run(trained) -> None:
    run_id = str(registry.get_version(trained["uc"], trained["version"]).run_id)
    data = _run(run_id)
    assert data.metrics["energy_kwh"] > 0
    assert data.metrics["emissions_kg_co2eq"] > 0
    # Germany's mix: between 0.1 and 1 kg CO2eq per kWh
    assert 0.1 < data.metrics["emissions_kg_co2eq"] / data.metrics["energy_kwh"] < 1
    assert data.tags["fairway.energy_tool"] == "codecarbon offline"
    assert data.tags["fairway.energy_country_iso_code"] == "DEU"
    assert data.tags["fairway.energy_status"] in ("measured", "estimated")
    if data.tags["fairway.energy_status"] == "estimated":  # no power counters (this machine): says from what
        assert "CPU model" in data.tags["fairway.energy_method"]


def test_a_batch_month_logs_its_energy_in_the_summary_and_its_mlflow_run(trained) -> None:
    uc = trained["uc"]
    summary = score_month(uc, "2024-05", pin_champion(uc), "energy-batch")
    assert summary["rows"] > 0 and summary["energy_kwh"] > 0 and summary["emissions_kg_co2eq"] > 0
    assert summary["energy_tool"] == "codecarbon offline" and summary["energy_country_iso_code"] == "DEU"
    run = registry.client().get_run(summary["energy_run_id"])
    assert run.info.run_name == "batch-2024-05"
    assert run.data.metrics["energy_kwh"] == pytest.approx(summary["energy_kwh"])
    assert run.data.metrics["rows_scored"] == summary["rows"]
    assert run.data.tags["fairway.month"] == "2024-05" and run.data.tags["fairway.model_version"] == trained["version"]
    assert run.data.tags["fairway.airflow_run_id"] == "energy-batch"
    experiment = registry.client().get_experiment(run.info.experiment_id)
    assert experiment.name == "fairway-credit_risk-batch"


def test_tracking_disabled_logs_no_energy(trained) -> None:
    uc = trained["uc"].model_copy(update={"energy": EnergySpec(enabled=False, country_iso_code="FRA")})
    result = train_candidate(uc, trained["frame"], "baseline")
    assert not result["failed"] and "energy_kwh" not in result
    data = _run(result["run_id"])
    assert not {"energy_kwh", "emissions_kg_co2eq"} & set(data.metrics)
    assert not ENERGY_TAGS & set(data.tags)
    summary = score_month(uc, "2024-06", pin_champion(uc), "energy-off")
    assert summary["rows"] > 0 and not [k for k in summary if k.startswith("energy") or k.startswith("emissions")]


def test_a_tracker_that_fails_does_not_fail_training(trained, monkeypatch) -> None:
    def no_power_counters(spec: EnergySpec) -> object:
        raise PermissionError("/sys/class/powercap/intel-rapl: Permission denied")

    monkeypatch.setattr(energy, "_tracker", no_power_counters)
    result = train_candidate(trained["uc"], trained["frame"], "baseline")
    assert not result["failed"], result
    data = _run(result["run_id"])
    assert data.metrics["auc"] > 0.5 and "energy_kwh" not in data.metrics
    assert data.tags["fairway.energy_status"] == "not measured"
    assert "PermissionError" in data.tags["fairway.energy_method"]


def test_a_tracker_that_fails_on_stop_and_the_blocks_own_error() -> None:
    class Broken:
        def start(self) -> None:
            pass

        def stop(self) -> None:
            raise RuntimeError("scheduler thread died")

    spec = EnergySpec()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(energy, "_tracker", lambda spec: Broken())
        with energy.tracked(spec, "work") as used:
            pass
    assert used.status == "not measured" and "scheduler thread died" in used.method and used.metrics() == {}
    with pytest.raises(ZeroDivisionError), energy.tracked(spec, "work that fails") as failing:
        _ = 1 / 0
    assert failing.energy_kwh is not None and failing.energy_kwh > 0  # measured up to the failure


def test_a_country_codecarbon_does_not_know_gives_energy_without_emissions() -> None:
    with energy.tracked(EnergySpec(country_iso_code="ZZZ"), "work") as used:
        sum(range(200_000))
    assert used.energy_kwh is not None and used.energy_kwh > 0
    assert used.emissions_kg_co2eq is None and "no electricity mix of ZZZ" in used.method
    assert used.metrics() == {"energy_kwh": used.energy_kwh}
