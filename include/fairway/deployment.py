"""What the deployment is made of, as facts read from its settings (fairway.settings, the Feast config), for the
architecture and cybersecurity sections of the documentation (AI Act Annex IV 2(d), 2(h), Art. 15(4-5);
GDPR Art. 30(1)(g), Art. 32).

Only what the settings show is stated: which store or engine each component uses, where its key comes from,
whether a network address uses TLS. Credentials never appear (a URL is reduced to its scheme and host). What the
settings cannot show (network segmentation, host hardening, access reviews) is left to the provider.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

from fairway import settings
from fairway.config import FEATURE_REPO_DIR, PROJECT_DIR, UseCase


@dataclass(frozen=True)
class Fact:
    component: str
    setting: str
    fact: str


def _where(url: str) -> str:
    """A URL without credentials, path or query: `postgresql on db:5432`, `SQLite file under FAIRWAY_HOME`."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0] or "file"
    if scheme == "sqlite":
        inside = str(settings.home()) in url
        return f"SQLite file{' under FAIRWAY_HOME' if inside else ''} (local, no network)"
    host = parts.hostname or "localhost"
    return f"{scheme} on {host}{f':{parts.port}' if parts.port else ''}"


def tls(url: str) -> str:
    """Whether a network URL asks for TLS, from its scheme or its query (sslmode, ssl); `local` for SQLite."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    if scheme in ("sqlite", "file", ""):
        return "not applicable (local file)"
    query = {k.lower(): v[-1].lower() for k, v in parse_qs(parts.query).items()}
    if scheme in ("https", "rediss") or query.get("sslmode") in ("require", "verify-ca", "verify-full") or \
            query.get("ssl") in ("true", "1", "required"):  # fmt: skip
        return "TLS"
    return "no TLS in the configured address"


def _key_source(name: str) -> str:
    variable = f"FAIRWAY_{name.upper()}_KEY"
    if settings.env(variable):
        return f"from the deployment ({variable}); not stored by Fairway"
    return f"generated once into FAIRWAY_HOME/secrets/{name}.key (file mode 0600): {variable} is not set"


def _redis_tls(connection: str) -> str:
    """Feast's Redis connection string (`host:port,ssl=true,password=...`)."""
    if not connection:
        return "connection from FAIRWAY_REDIS_CONNECTION, not set in this environment"
    options = {part.split("=", 1)[0].strip().lower(): part.split("=", 1)[1].strip().lower()
               for part in connection.split(",")[1:] if "=" in part}  # fmt: skip
    return "TLS" if options.get("ssl") in ("true", "1") else "no TLS in the configured connection"


def _feast(uc: UseCase) -> list[Fact]:
    from fairway.features.store import feature_store_yaml, set_environment

    set_environment(uc)  # the config names FAIRWAY_HOME and FAIRWAY_USECASE

    path = feature_store_yaml()
    config = yaml.safe_load(path.read_text())
    variant = os.environ.get("FAIRWAY_FEAST_CONFIG", "embedded")
    registry = config.get("registry", {})
    registry_url = os.path.expandvars(str(registry.get("path", "")))
    online = config.get("online_store", {})
    online_type = str(online.get("type", "sqlite"))
    if "redis" in online_type:
        transport = _redis_tls(os.path.expandvars(str(online.get("connection_string", ""))).replace("$", ""))
    else:
        transport = "not applicable (local file)"
    return [
        Fact("feature store (Feast)", "FAIRWAY_FEAST_CONFIG", f"`{variant}` configuration ({path.name})"),
        Fact("feature store (Feast)", "registry", f"{registry.get('registry_type', 'file')} registry, "
             f"{_where(registry_url) if '$' not in registry_url else 'address not set in this environment'}; "
             f"transport: {tls(registry_url)}"),
        Fact("feature store (Feast)", "offline store", f"{config.get('offline_store', {}).get('type', 'file')} "
             "over monthly parquet partitions under FAIRWAY_HOME"),
        Fact("feature store (Feast)", "online store", f"{online_type}; transport: {transport}"),
    ]  # fmt: skip


def facts(uc: UseCase) -> list[Fact]:
    """The deployment as the process that writes the documentation sees it."""
    from fairway.records import decision_log_url

    mlflow_uri, ledger, log = settings.mlflow_uri(), settings.ledger_url(), decision_log_url(uc)
    api_key = bool(os.environ.get("FAIRWAY_SERVICE_API_KEY"))
    host = os.environ.get("AIRFLOW__API__HOST") or "0.0.0.0 (Airflow's default: every interface)"
    found = [
        Fact("model registry (MLflow)", "MLFLOW_TRACKING_URI", f"{_where(mlflow_uri)}; transport: {tls(mlflow_uri)}"),
        Fact("promotion ledger", "FAIRWAY_LEDGER_URL", f"{_where(ledger)}; transport: {tls(ledger)}; append-only, "
             "hash-chained, every entry signed (HMAC-SHA256)"),
        Fact("promotion ledger", "signing key", _key_source("ledger")),
        Fact("decision records", "FAIRWAY_DECISION_LOG_URL", f"{_where(log)}; transport: {tls(log)}"),
        Fact("pseudonymisation", "key", f"{_key_source('pseudonym')}; record subjects are keyed hashes "
             "(HMAC-SHA256) of the customer id"),
        Fact("model packaging (BentoML)", "BENTOML_HOME", "the model store under FAIRWAY_HOME"
             if not os.environ.get("BENTOML_HOME") or str(settings.home()) in os.environ["BENTOML_HOME"]
             else "a model store outside FAIRWAY_HOME (BENTOML_HOME)"),
        Fact("scoring service", "FAIRWAY_SERVICE_API_KEY", "set: /predict, /predict_features and /model require the "
             "X-API-Key header" if api_key else "not set in this environment: the service's endpoints answer "
             "without a key unless its own environment sets one"),
        Fact("Airflow UI and Fairway view", "AIRFLOW__API__HOST", f"listens on {host}; every page and report of "
             "the Fairway view requires an Airflow login (token validated by Airflow's auth manager)"),
        Fact("approval", "FAIRWAY_APPROVAL_MODE", "human: a person approves every promotion in Airflow"
             if settings.approval_mode() == "human" else "auto: promotions are approved by policy (demo, tests)"),
    ]  # fmt: skip
    return found[:4] + _feast(uc) + found[4:]


# --- the environment of the ecosystem's command-line tools -------------------------------------------------


def stack_env_file() -> Path:
    """Where `make up` writes the running stack's variables (FAIRWAY_HOME/run/stack.env)."""
    return settings.home() / "run" / "stack.env"


def read_stack_env(path: Path | None = None) -> dict[str, str]:
    """The running stack's variables (`export K=V` lines of stack.env), empty when no stack is up."""
    path = path or stack_env_file()
    if not path.is_file():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            values[key] = shlex.split(value)[0] if value else ""
    return values


def cli_environment(uc: UseCase) -> dict[str, str]:
    """What the airflow, feast, mlflow and bentoml CLIs need to see this deployment, as `fairway env` exports it:
    the stores under FAIRWAY_HOME (or the variables already set), Airflow's home and DAG folder, Feast's repo
    and config (so `feast` works without `-c` from any directory), and, when `make up` runs, its stack.env."""
    from fairway.features.store import feature_store_yaml

    home = settings.home()
    values = {
        "FAIRWAY_HOME": str(home),
        "FAIRWAY_USECASE": uc.name,
        "AIRFLOW_HOME": settings.env("AIRFLOW_HOME") or str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_DIR / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_DIR / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "MLFLOW_TRACKING_URI": settings.mlflow_uri(),
        "BENTOML_HOME": settings.env("BENTOML_HOME") or str(home / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "FEATURE_REPO_DIR_ENV_VAR": str(FEATURE_REPO_DIR.resolve()),
    }
    for name in ("FAIRWAY_FEAST_CONFIG", "FAIRWAY_DECISION_LOG_URL", "FAIRWAY_LEDGER_URL"):
        if settings.env(name):
            values[name] = str(settings.env(name))
    values.update(read_stack_env())
    values["FEAST_FS_YAML_FILE_PATH"] = str(feature_store_yaml(values.get("FAIRWAY_FEAST_CONFIG")))
    return values


def shell_exports(values: dict[str, str]) -> str:
    """`export K=V` lines, quoted for a POSIX shell (`eval "$(fairway env)"`)."""
    return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in values.items())
