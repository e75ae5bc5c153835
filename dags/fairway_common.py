"""What Fairway's DAG files share: default arguments, start date, the use-case Param and the catalogue check."""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, conf, task
from fairway_notify import FairwayNotifier

# retry_delay: [core] default_task_retry_delay (Airflow default: 300 s), set explicitly. Left implicit, a mapped @task
# omits it from its partial_kwargs and dag.test() rebuilds the DAG without the serialized client_defaults, so the mapped
# task fell back to SerializedBaseOperator.retry_delay, a hard-coded 300 s (Airflow 3.3.2; tests/dags/test_retries.py)
# on_failure_callback: a task that failed for good (after its retries) is notified to the deployment's channels
DEFAULT_ARGS = {"owner": "fairway", "retries": 2, "retry_delay": conf.getfloat("core", "default_task_retry_delay"),
                "on_failure_callback": [FairwayNotifier("run_failed")]}  # fmt: skip
START_DATE = pendulum.datetime(2024, 1, 1, tz="UTC")
MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
USECASE_PATTERN = r"^[a-z_][a-z0-9_]*$"  # a name; fairway.config resolves it in the use-case folders only
# month partitions: data_interval_start..end is the calendar month (plain "@monthly" has a zero-width interval)
MONTHLY = CronDataIntervalTimetable("@monthly", timezone="UTC")


def usecase_param() -> Param:
    """The use-case Param; its default is $FAIRWAY_USECASE when the DAG file is parsed, else credit_risk."""
    return Param(
        os.environ.get("FAIRWAY_USECASE") or "credit_risk",
        type="string",
        pattern=USECASE_PATTERN,
        title="Use case",
        description="Name (never a path) of the use-case config: <name>.yaml in $FAIRWAY_USECASES_DIR, "
        "FAIRWAY_HOME/usecases (written by `fairway usecase init`) or include/fairway/usecases. Default: "
        "$FAIRWAY_USECASE of the DAG processor, else credit_risk.",
    )


@task
def check_catalogue(params: dict[str, Any]) -> dict[str, int]:
    """The applied Feast repo obeys the data-catalogue policy (no unjustified protected or proxy model input)."""
    from fairway.features.catalogue import check_usecase

    return check_usecase(params["usecase"])


def month_param(action: str, empty: str = "the month of the run's data interval") -> Param:
    """The optional month of a monthly DAG's trigger form."""
    return Param(
        None,
        type=["null", "string"],
        pattern=MONTH_PATTERN,
        title="Month (YYYY-MM)",
        description=f"Month to {action}. Empty: {empty}.",
    )


def run_month(params: dict[str, Any], data_interval_start: Any) -> str:
    """The month a monthly run works on: the form's month, else the month of the data interval."""
    return params.get("month") or data_interval_start.strftime("%Y-%m")


def asset_events(triggering_asset_events: Any) -> list[Any]:
    """The asset events that triggered the run, oldest first (Airflow hands them over in no particular order)."""
    events = [event for batch in (triggering_asset_events or {}).values() for event in batch]
    return sorted(events, key=lambda e: e.timestamp)


def triggered_by(triggering_asset_events: Any) -> dict[str, Any]:
    """What the asset events that triggered the run carry (`extra`; of several events, the latest wins); empty
    for manual runs."""
    carried: dict[str, Any] = {}
    for event in asset_events(triggering_asset_events):
        carried.update(event.extra or {})
    return carried
