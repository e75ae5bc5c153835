"""Airflow plugin: a "Fairway" entry in the Airflow UI's navigation with the model versions, their gate
decisions and approvals, the documentation, and the monthly drift and fairness reports (fairway.ui renders them).

Served by the Airflow API server under /fairway (a FastAPI app), shown inside the UI at /plugin/fairway.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

app = FastAPI(title="Fairway", description="Model versions, approvals, documentation and monitoring of Fairway")


@app.get("/", response_class=HTMLResponse)
async def overview(usecase: str | None = None) -> str:
    from fairway import ui

    return await run_in_threadpool(ui.page, usecase)


@app.get("/documentation/{usecase}/{version}", response_class=HTMLResponse)
async def documentation(usecase: str, version: str) -> str:
    from fairway import ui

    try:
        return await run_in_threadpool(ui.documentation, usecase, version)
    except Exception as error:  # a version without documentation (not promoted), or an unknown one
        raise HTTPException(404, f"no documentation for {usecase} v{version}: {error}") from None


def _reports() -> StaticFiles:
    from fairway.config import paths

    folder = paths().reports
    folder.mkdir(parents=True, exist_ok=True)
    return StaticFiles(directory=folder)


app.mount("/reports", _reports(), name="reports")


class FairwayPlugin(AirflowPlugin):
    name = "fairway"
    fastapi_apps = [{"app": app, "url_prefix": "/fairway", "name": "Fairway"}]
    external_views = [{"name": "Fairway", "href": "fairway/", "destination": "nav", "url_route": "fairway",
                       "category": "browse"}]  # fmt: skip
