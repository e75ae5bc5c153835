"""
### training — candidate models, evaluated for performance and fairness, tracked in MLflow

1. **check_catalogue** — no protected or unjustified proxy feature among the model inputs.
2. **build_training_frame** — point-in-time frame through Feast: model inputs (`credit_model_v1`) and protected
   attributes (`fairness_audit_v1`, evaluation only) as of each snapshot, with the labels known at the end of
   the window; the latest month is the holdout. Stored under FAIRWAY_HOME with its fingerprint.
3. **train_candidate** (one mapped task per candidate) — logistic regression and histogram gradient boosting,
   each as a baseline and bias-mitigated without a protected attribute at prediction time (reweighing over the
   intersectional protected groups; holisticai ExponentiatedGradient, logistic); AUC, accuracy, Brier and
   holisticai bias metrics per protected group; one MLflow run each with the fairness table, plots and lineage.
   A candidate that raises is logged as a FAILED run with its reason and the others go on.
4. **register_candidate** — the best AUC among the trained candidates within the fairness thresholds, else the
   fairest, becomes a new version of the model with alias `candidate`; fails (without retrying) only when every
   candidate failed, naming each reason.

Triggered by hand (the form below) or by a `fairway_retraining_request` from monitoring: then the window ends
at the month of the request (the labels known then) and the request's reasons are kept as the run's lineage. Emits
`fairway_model_candidate`, which schedules `fairness_gate`.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, task
from fairway_assets import MODEL_CANDIDATE, RETRAINING_REQUEST
from fairway_common import DEFAULT_ARGS, MONTH_PATTERN, START_DATE, check_catalogue, triggered_by, usecase_param

CANDIDATES = ["baseline", "reweighing", "exponentiated_gradient", "gradient_boosting", "gradient_boosting_reweighing"]


@dag(
    dag_id="training",
    schedule=RETRAINING_REQUEST,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["fairway", "training"],
    params={
        "usecase": usecase_param(),
        "window_end": Param(
            None,
            type=["null", "string"],
            pattern=MONTH_PATTERN,
            title="Window end (YYYY-MM)",
            description="Labels as known at the end of this month. Empty: the latest month with labels.",
        ),
        "window_months": Param(
            6,
            type="integer",
            minimum=2,
            maximum=60,
            title="Window length (months)",
            description="Snapshot months in the training frame; the latest is the holdout.",
        ),
        "candidates": Param(
            CANDIDATES,
            type="array",
            items={"type": "string", "enum": CANDIDATES},
            minItems=1,
            title="Candidates",
            description="Which candidate models to train and compare.",
        ),
    },  # fmt: skip
)
def training() -> None:
    @task
    def build_training_frame(params: dict[str, Any], triggering_asset_events: Any = None) -> dict[str, Any]:
        from fairway.training import build_training_frame

        request = triggered_by(triggering_asset_events)
        return build_training_frame(
            params["usecase"],
            params["window_end"] or request.get("month"),
            params["window_months"],
            trigger=request.get("reasons"),
        )

    @task
    def candidate_names(params: dict[str, Any]) -> list[str]:
        return list(dict.fromkeys(params["candidates"]))

    @task(map_index_template="{{ candidate }}")
    def train_candidate(candidate: str, frame: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        from fairway.training import train_candidate

        return train_candidate(params["usecase"], frame, candidate)

    @task(outlets=[MODEL_CANDIDATE])
    def register_candidate(
        results: list[dict[str, Any]], params: dict[str, Any], outlet_events: Any = None
    ) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from fairway.training import CandidateFailed, register_best

        try:  # by index: iterating the lazy XCom sequence runs past its end and logs a 404
            registered = register_best(params["usecase"], [results[i] for i in range(len(results))])
        except CandidateFailed as error:  # a retry would read the same failed candidates
            raise AirflowFailException(str(error)) from None
        outlet_events[MODEL_CANDIDATE].extra = {"usecase": params["usecase"], "version": registered["version"]}
        return registered

    frame = build_training_frame()
    check_catalogue() >> frame
    results = train_candidate.partial(frame=frame).expand(candidate=candidate_names())
    register_candidate(results)


training()
