"""Airflow plugin: a "Fairway" entry in the Airflow UI's navigation with the model versions, their gate
decisions and approvals, the documentation, and the monthly drift and fairness reports (fairway.ui renders them).

Served by the Airflow API server under /fairway (a FastAPI app), shown inside the UI at /plugin/fairway.

Airflow does not authenticate the FastAPI apps of plugins, so this one does, with Airflow's own machinery: every
request (a page, a report file, anything under /fairway) must carry what the core API accepts, an
`Authorization: Bearer <JWT>` header or the `_token` cookie the UI sets at login, validated by the API server's
auth manager (`airflow.api_fastapi.core_api.security.get_user`); and the user must be allowed to see the Airflow
website. Without it: 401, or for a browser a redirect to Airflow's login page, which comes back here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

app = FastAPI(title="Fairway", description="Model versions, approvals, documentation and monitoring of Fairway",
              docs_url=None, redoc_url=None, openapi_url=None)  # fmt: skip


def _wants_html(request: Request) -> bool:
    return request.method in ("GET", "HEAD") and "text/html" in request.headers.get("accept", "")


def _login_required(request: Request, reason: str) -> Response:
    """401 for an API client; a browser goes to Airflow's login page, which sends it back to this URL."""
    from airflow.api_fastapi.app import get_auth_manager

    if _wants_html(request):
        return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
    return JSONResponse({"detail": f"{reason}: log in to Airflow (the UI's session cookie, or "
                                   "`Authorization: Bearer <token>` from POST /auth/token)"},
                        status_code=401, headers={"WWW-Authenticate": "Bearer"})  # fmt: skip


@app.middleware("http")
async def airflow_login(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Every request of this app, routes and mounted report files alike, passes Airflow's authentication."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    try:
        # the core API's own dependency: the Bearer header first, else the `_token` cookie (as checked by the
        # API server's JWTRefreshMiddleware); absent, expired, revoked or badly signed tokens raise here
        user = await get_user(request, _oauth_token=None, bearer_credentials=await bearer_scheme(request))
    except HTTPException as error:
        return _login_required(request, str(error.detail))
    if not get_auth_manager().is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        return JSONResponse({"detail": f"user {user.get_name()!r} may not see the Airflow website"}, status_code=403)
    request.state.user = user  # who is logged in: the review form records the reviewer from it
    return await call_next(request)


def _refused(error: Exception) -> HTTPException:
    from fairway import ui

    return HTTPException(400 if isinstance(error, ui.RefusedName) else 404, str(error))


@app.get("/", response_class=HTMLResponse)
async def overview(usecase: str | None = None) -> str:
    from fairway import ui

    try:
        return await run_in_threadpool(ui.page, usecase)
    except (ui.RefusedName, ui.NotFound) as error:
        raise _refused(error) from None


@app.get("/documentation/{usecase}/{version}", response_class=HTMLResponse)
async def documentation(usecase: str, version: str) -> str:
    from fairway import ui

    try:
        return await run_in_threadpool(ui.documentation, usecase, version)
    except (ui.RefusedName, ui.NotFound) as error:
        raise _refused(error) from None


@app.get("/documentation/{usecase}/{version}/{name}")
async def documentation_file(usecase: str, version: str, name: str) -> Response:
    """A file of a version's documentation (its Markdown, the figures it links to, the other documents)."""
    from fairway import ui

    try:
        content, media_type = await run_in_threadpool(ui.documentation_file, usecase, version, name)
    except (ui.RefusedName, ui.NotFound) as error:
        raise _refused(error) from None
    return Response(content, media_type=media_type)


@app.get("/review", response_class=HTMLResponse)
async def review(request: Request, usecase: str | None = None, request_id: str | None = None) -> HTMLResponse:
    """Look up a decision by its request id, see it with its reviews, and the form to record one."""
    from fairway import ui

    allowed = _may_review(request)
    try:
        return HTMLResponse(await run_in_threadpool(ui.review_page, usecase, request_id, _reviewer(request), "", "",
                                                    allowed))  # fmt: skip
    except ui.RefusedName as error:
        raise _refused(error) from None
    except ui.NotFound as error:
        return await _review_error(usecase, None, str(error), 404)


def _reviewer(request: Request) -> str | None:
    user = getattr(request.state, "user", None)
    name = user.get_name() if user is not None else None
    return str(name) if name else None


def _may_review(request: Request) -> bool:
    """A review changes what applies to a person: only users who may change DAG runs (role User and above in the
    simple auth manager) record one; viewers see decisions and reviews."""
    from airflow.api_fastapi.app import get_auth_manager

    user = getattr(request.state, "user", None)
    return user is not None and bool(get_auth_manager().is_authorized_dag(method="PUT", user=user))


async def _review_error(usecase: str | None, request_id: str | None, message: str, status: int) -> HTMLResponse:
    from fairway import ui

    try:
        text = await run_in_threadpool(ui.review_page, usecase, request_id, None, "", message)
    except (ui.RefusedName, ui.NotFound) as error:
        raise _refused(error) from None
    return HTMLResponse(text, status_code=status)


@app.post("/review", response_class=HTMLResponse)
async def record_review(request: Request) -> HTMLResponse:
    """Record a review from the form: the reviewer is the logged-in Airflow user (else the form's `by`)."""
    from urllib.parse import urlsplit

    from fairway import ui
    from fairway.review import InvalidReview

    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, "a review is recorded only from the Fairway view itself (cross-origin request)")
    if not _may_review(request):
        raise HTTPException(403, f"user {_reviewer(request)!r} may not record reviews (needs the role to change DAG runs)")
    form = await request.form()
    field = {key: str(form.get(key) or "") for key in ("usecase", "request_id", "decision", "kind", "reason", "by")}
    reviewer = _reviewer(request) or field["by"]
    try:
        return HTMLResponse(await run_in_threadpool(ui.submit_review, field["usecase"] or None, field["request_id"],
                                                    field["decision"], field["kind"], field["reason"], reviewer))  # fmt: skip
    except ui.RefusedName as error:
        raise _refused(error) from None
    except ui.NotFound as error:
        return await _review_error(field["usecase"] or None, None, str(error), 404)
    except InvalidReview as error:
        return await _review_error(field["usecase"] or None, field["request_id"], str(error), 400)


def _reports() -> StaticFiles:
    from fairway.config import paths

    folder = paths().reports
    folder.mkdir(parents=True, exist_ok=True)
    return StaticFiles(directory=folder)


app.mount("/reports", _reports(), name="reports")  # behind airflow_login too: the middleware wraps the whole app


class FairwayPlugin(AirflowPlugin):
    name = "fairway"
    fastapi_apps = [{"app": app, "url_prefix": "/fairway", "name": "Fairway"}]
    external_views = [{"name": "Fairway", "href": "fairway/", "destination": "nav", "url_route": "fairway",
                       "category": "browse"}]  # fmt: skip
