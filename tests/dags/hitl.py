"""Answering Airflow's human-in-the-loop requests from a test, as the REST API does.

`dag.test()` must run in the main thread, so the "human" is a background thread: it waits until the
approval task is `awaiting_input`, then records the response through the same function the API route
`PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/-1/hitlDetails` calls.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class User:
    """What the API route reads from the authenticated user."""

    def __init__(self, name: str) -> None:
        self.name = name

    def get_id(self) -> str:
        return self.name

    def get_name(self) -> str:
        return self.name


def _awaiting(dag_id: str, task_id: str, timeout: float) -> Any:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with create_session() as session:
            ti = session.scalar(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.task_id == task_id,
                    TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
                )
            )
            if ti is not None:
                session.expunge(ti)
                return ti
        time.sleep(0.05)
    raise TimeoutError(f"{dag_id}.{task_id} never waited for input")


def _resume_if_stranded(ti_id: Any, grace: float = 2.5) -> None:
    """dag.test() can overwrite a response that lands while it parks the task: re-submit it then."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with create_session() as session:
            if session.get(TaskInstance, ti_id).state != TaskInstanceState.AWAITING_INPUT:
                return
        time.sleep(0.1)
    with create_session() as session:
        ti, detail = session.get(TaskInstance, ti_id), session.get(HITLDetail, ti_id)
        if ti.state == TaskInstanceState.AWAITING_INPUT and detail is not None and detail.response_received:
            handle_event_submit(TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=session)


def _warm_up() -> None:
    """Import the ORM models and the API route in the main thread: a first import from the answering thread
    while dag.test() imports lazily can deadlock on import locks."""
    import airflow.api_fastapi.core_api.routes.public.hitl  # noqa: F401
    from airflow.models import import_all_models
    from sqlalchemy.orm import configure_mappers

    import_all_models()
    configure_mappers()


def answer_in_background(
    dag_id: str, task_id: str, option: str, comment: str, user: str, seen: dict
) -> threading.Thread:
    """Start the human: `seen` receives the request (subject, body) and any error."""
    _warm_up()

    def human() -> None:
        from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
        from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
        from airflow.models.hitl import HITLDetail
        from airflow.utils.session import create_session

        try:
            ti = _awaiting(dag_id, task_id, timeout=120)
            time.sleep(0.3)  # let dag.test() finish parking the task before the answer resumes it
            with create_session() as session:
                detail = session.get(HITLDetail, ti.id)
                seen.update(subject=detail.subject, body=detail.body, options=list(detail.options))
                update_hitl_detail(
                    dag_id=dag_id, dag_run_id=ti.run_id, task_id=task_id, map_index=-1,
                    update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[option], params_input={"comment": comment}),
                    user=User(user), session=session,
                )  # fmt: skip
            _resume_if_stranded(ti.id)
        except BaseException as exc:  # surfaced by the test
            seen["error"] = exc

    thread = threading.Thread(target=human, name="human-approver", daemon=True)
    thread.start()
    return thread
