"""The deployment's settings: where each store is and which secrets sign and pseudonymise, read from the
environment whenever they are asked for.

Under a real Airflow scheduler every task runs in a fresh process: a function must not rely on what an earlier
call in the same process set up. So every Fairway function that reaches MLflow, BentoML, the ledger or a key
asks this module, which reads the deployment's settings (and nothing else):

| setting | variable | default |
|---|---|---|
| everything Fairway writes | FAIRWAY_HOME | ./.fairway |
| MLflow tracking and registry | MLFLOW_TRACKING_URI | sqlite:///FAIRWAY_HOME/mlflow/mlflow.db |
| BentoML's store | BENTOML_HOME | FAIRWAY_HOME/bentoml |
| the promotion ledger | FAIRWAY_LEDGER_URL | FAIRWAY_DECISION_LOG_URL, else sqlite:///FAIRWAY_HOME/records/ledger.db |
| the ledger's signing key | FAIRWAY_LEDGER_KEY | FAIRWAY_HOME/secrets/ledger.key (created once, mode 0600) |
| the pseudonymisation key | FAIRWAY_PSEUDONYM_KEY | FAIRWAY_HOME/secrets/pseudonym.key (created once, mode 0600) |
| automatic approval | FAIRWAY_APPROVAL_MODE | human |
| secrets that must come from the environment (no key file is created) | FAIRWAY_REQUIRED_SECRETS | none (e.g. `pseudonym`) |
| Airflow's metadata DB, for erasure | FAIRWAY_AIRFLOW_DB_URL | AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, else sqlite:///AIRFLOW_HOME/airflow.db |
| notification e-mail recipients (comma-separated) | FAIRWAY_NOTIFY_EMAIL_TO | none: no e-mail |
| notification sender | FAIRWAY_NOTIFY_EMAIL_FROM | the SMTP connection's `from_email` |
| Airflow SMTP connection of the notifications | FAIRWAY_NOTIFY_SMTP_CONN_ID | smtp_default |
| notification webhook (POST JSON) | FAIRWAY_NOTIFY_WEBHOOK_URL | none: no webhook |
| the webhook's bearer token | FAIRWAY_NOTIFY_WEBHOOK_TOKEN | none |
| the Airflow UI's address in notification links | FAIRWAY_AIRFLOW_URL | AIRFLOW__API__BASE_URL, else http://localhost:8080 |
| the Evidently workspace monitoring publishes to | FAIRWAY_EVIDENTLY_URL (an `evidently ui` server) | the folder FAIRWAY_HOME/reports/evidently |
| that server's write secret (`evidently ui --secret`) | FAIRWAY_EVIDENTLY_SECRET | none |

A value that still holds the `CHANGE-ME` placeholder of `.env.example` is refused (SettingsError), so a service
never starts on a published example secret.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PLACEHOLDER = "CHANGE-ME"


class SettingsError(RuntimeError):
    """A deployment setting is missing, malformed or still the example placeholder."""


def env(name: str) -> str | None:
    """The variable's value, None when unset or empty; refused when it is still the placeholder."""
    value = os.environ.get(name)
    if not value:
        return None
    if PLACEHOLDER in value:
        raise SettingsError(f"{name} still holds the {PLACEHOLDER} placeholder of .env.example: set a real value")
    return value


def home() -> Path:
    """FAIRWAY_HOME (default ./.fairway), absolute."""
    return Path(env("FAIRWAY_HOME") or ".fairway").resolve()


def mlflow_uri() -> str:
    """MLFLOW_TRACKING_URI when set (PostgreSQL, a server), else SQLite under FAIRWAY_HOME/mlflow."""
    uri = env("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    folder = home() / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def configure_mlflow() -> str:
    """Point MLflow's process-wide tracking and registry URIs at the deployment's (idempotent, cheap: call it
    before any MLflow call rather than trusting an earlier one)."""
    import mlflow

    uri = mlflow_uri()
    if mlflow.get_tracking_uri() != uri:
        mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return uri


def configure_bentoml() -> Path:
    """BentoML's store under FAIRWAY_HOME unless BENTOML_HOME is set; no usage tracking. BentoML fixes its store
    when first imported: call this before importing bentoml."""
    os.environ["BENTOML_HOME"] = env("BENTOML_HOME") or str(home() / "bentoml")
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    return Path(os.environ["BENTOML_HOME"])


def ledger_url() -> str:
    """Where the promotion ledger lives: FAIRWAY_LEDGER_URL, else the decision log's database when
    FAIRWAY_DECISION_LOG_URL is set, else SQLite under FAIRWAY_HOME/records."""
    url = env("FAIRWAY_LEDGER_URL") or env("FAIRWAY_DECISION_LOG_URL")
    if url:
        return url
    folder = home() / "records"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'ledger.db'}"


def secret(name: Literal["pseudonym", "ledger"]) -> bytes:
    """A deployment secret: FAIRWAY_<NAME>_KEY, else FAIRWAY_HOME/secrets/<name>.key, created once (0600).
    A secret named in FAIRWAY_REQUIRED_SECRETS (comma-separated) must come from its variable: no file is read
    or created for it (the Compose stack requires the pseudonymisation key this way)."""
    value = env(f"FAIRWAY_{name.upper()}_KEY")
    if value:
        return value.encode()
    required = {part.strip() for part in (env("FAIRWAY_REQUIRED_SECRETS") or "").split(",")}
    if name in required:
        raise SettingsError(f"FAIRWAY_{name.upper()}_KEY is not set, and FAIRWAY_REQUIRED_SECRETS says the "
                            f"deployment must provide it (no key file is used)")  # fmt: skip
    path = home() / "secrets" / f"{name}.key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(draft, path)  # atomic: of two processes creating it at once, one key wins, whole
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip().encode()


BLOCKED_DB = "airflow-db-not-allowed"  # what Airflow's task runner puts in its DB variables (no ORM in tasks)


def airflow_db_url() -> str | None:
    """Airflow's metadata DB, which the erasure searches (the conf of runs, the audit log): FAIRWAY_AIRFLOW_DB_URL,
    else AIRFLOW__DATABASE__SQL_ALCHEMY_CONN (unless Airflow's task runner blocked it), else Airflow's default
    SQLite DB under AIRFLOW_HOME (FAIRWAY_HOME/airflow) when it exists; None when none is known."""
    url = env("FAIRWAY_AIRFLOW_DB_URL") or env("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if url and not url.startswith(BLOCKED_DB):
        return url
    path = Path(env("AIRFLOW_HOME") or home() / "airflow").resolve() / "airflow.db"
    return f"sqlite:///{path}" if path.is_file() else None


def approval_mode() -> Literal["human", "auto"]:
    """`auto` only where the deployment says so (FAIRWAY_APPROVAL_MODE=auto: the demo, tests); else `human`.
    A use-case config cannot switch its gate to automatic approval."""
    mode = env("FAIRWAY_APPROVAL_MODE") or "human"
    if mode not in ("human", "auto"):
        raise SettingsError(f"FAIRWAY_APPROVAL_MODE must be 'human' or 'auto', not {mode!r}")
    return "auto" if mode == "auto" else "human"


DEFAULT_AIRFLOW_URL = "http://localhost:8080"


@dataclass(frozen=True)
class Notifications:
    """Where Fairway's notifications go (fairway.notifications builds them; the DAGs' notifiers send them)."""

    email_to: tuple[str, ...]
    email_from: str | None
    smtp_conn_id: str
    webhook_url: str | None
    webhook_token: str | None

    @property
    def channels(self) -> list[str]:
        """The configured channels: `email`, `webhook`; empty when nobody is to be notified."""
        return [name for name, on in (("email", bool(self.email_to)), ("webhook", bool(self.webhook_url))) if on]


def notifications() -> Notifications:
    """The deployment's notification channels (FAIRWAY_NOTIFY_*); none configured: nothing is sent (logged)."""
    to = tuple(part.strip() for part in (env("FAIRWAY_NOTIFY_EMAIL_TO") or "").split(",") if part.strip())
    url = env("FAIRWAY_NOTIFY_WEBHOOK_URL")
    if url and not url.startswith(("http://", "https://")):
        raise SettingsError(f"FAIRWAY_NOTIFY_WEBHOOK_URL must be an http(s) URL, not {url!r}")
    return Notifications(to, env("FAIRWAY_NOTIFY_EMAIL_FROM"), env("FAIRWAY_NOTIFY_SMTP_CONN_ID") or "smtp_default",
                         url, env("FAIRWAY_NOTIFY_WEBHOOK_TOKEN"))  # fmt: skip


def airflow_url() -> str:
    """The Airflow UI's base address for links (FAIRWAY_AIRFLOW_URL, else Airflow's [api] base_url from
    AIRFLOW__API__BASE_URL, else http://localhost:8080), without a trailing slash."""
    return (env("FAIRWAY_AIRFLOW_URL") or env("AIRFLOW__API__BASE_URL") or DEFAULT_AIRFLOW_URL).rstrip("/")


@dataclass(frozen=True)
class EvidentlyTarget:
    """Where monitoring writes its Evidently snapshots: a workspace folder, or an `evidently ui` server."""

    folder: Path
    url: str | None
    secret: str | None


def evidently() -> EvidentlyTarget:
    """FAIRWAY_EVIDENTLY_URL (with FAIRWAY_EVIDENTLY_SECRET) when set, else the folder FAIRWAY_HOME/reports/evidently
    (what `evidently ui --workspace` serves)."""
    url = env("FAIRWAY_EVIDENTLY_URL")
    if url and not url.startswith(("http://", "https://")):
        raise SettingsError(f"FAIRWAY_EVIDENTLY_URL must be an http(s) URL, not {url!r}")
    return EvidentlyTarget(home() / "reports" / "evidently", url.rstrip("/") if url else None,
                           env("FAIRWAY_EVIDENTLY_SECRET"))  # fmt: skip
