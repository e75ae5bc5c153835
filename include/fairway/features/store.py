"""Access to the Feast feature store of a use case: apply the repo, write offline partitions, materialize.

Each monthly partition is one parquet file per feature view, written atomically; a month is written again by
replacing its files, so a rerun gives the same store. Materialization writes an explicit window (the month
plus an overlap for late data) and never the watermark-driven `materialize-incremental`, which `feast apply`
can reset.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from fairway.config import FEATURE_REPO_DIR, UseCase, month_str, paths, resolve
from fairway.data import ValidatedMonth, month_bounds, to_arrow, validate_month, write_parquet_atomic
from fairway.erasures import erased_hashes, without_erased

if TYPE_CHECKING:  # feast costs seconds to import: only the functions that use it import it
    from feast import FeatureStore

log = logging.getLogger(__name__)


def set_environment(uc: UseCase) -> None:
    """feature_store.yaml reads FAIRWAY_HOME and FAIRWAY_USECASE: make them absolute and explicit."""
    os.environ["FAIRWAY_HOME"] = str(paths().home)
    os.environ["FAIRWAY_USECASE"] = uc.name
    paths().feast_project(uc.name).mkdir(parents=True, exist_ok=True)


CONFIGS = {"embedded": "feature_store.yaml", "production": "feature_store.production.yaml"}


def feature_store_yaml(choice: str | None = None) -> Path:
    """The repo's config: `choice`, else FAIRWAY_FEAST_CONFIG, names a variant (`embedded`, the default, or
    `production`) or a path."""
    choice = choice or os.environ.get("FAIRWAY_FEAST_CONFIG") or "embedded"
    path = FEATURE_REPO_DIR / CONFIGS[choice] if choice in CONFIGS else Path(choice)
    if not path.is_file():
        raise FileNotFoundError(f"Feast config {path} (FAIRWAY_FEAST_CONFIG={choice!r}) does not exist")
    return path.resolve()


def get_store(uc: UseCase) -> FeatureStore:
    from feast import FeatureStore

    set_environment(uc)
    return FeatureStore(repo_path=str(FEATURE_REPO_DIR), fs_yaml_file=feature_store_yaml())


@contextlib.contextmanager
def _repo_import_scope(repo: Path) -> Iterator[None]:
    """`feast apply` imports the repo's files as top-level modules and changes directory: undo both after."""
    cwd = os.getcwd()
    names = [p.stem for p in repo.glob("*.py")]
    for name in names:
        sys.modules.pop(name, None)
    sys.path.insert(0, str(repo))
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.path.remove(str(repo))
        for name in names:
            sys.modules.pop(name, None)


def apply_repo(usecase: UseCase | str | None = None) -> dict[str, int]:
    """The equivalent of `feast apply` in feature_repo/ for this use case; returns what the registry holds."""
    from feast.repo_config import load_repo_config
    from feast.repo_operations import apply_total

    uc = resolve(usecase)
    set_environment(uc)
    repo = FEATURE_REPO_DIR.resolve()
    with _repo_import_scope(repo):
        config = load_repo_config(repo, feature_store_yaml())
        apply_total(config, repo, skip_source_validation=True)
    store = get_store(uc)
    return {
        "entities": len(store.list_entities()),
        "feature_views": len(store.list_feature_views()),
        "feature_services": len(store.list_feature_services()),
    }


def offline_partition(uc: UseCase, view: str, month: str) -> Path:
    return paths().offline_view(uc.name, view) / f"{month}.parquet"


def partition_table(uc: UseCase, frame: pd.DataFrame) -> pa.Table:
    """A view's rows as written to its partition: every feature column in its declared type (ARROW_TYPES), so that
    every month of a view has the same schema, e.g. a nullable int given as float64 with NaN is int64 with nulls
    and a nullable column without any value is typed, not `null`."""
    from fairway.features.definitions import ARROW_TYPES

    table = to_arrow(frame)
    for name in table.column_names:
        try:
            declared = ARROW_TYPES[uc.feature(name).dtype]
        except KeyError:  # the key and the timestamps
            continue
        if table.schema.field(name).type != declared:
            index = table.schema.get_field_index(name)
            table = table.set_column(index, pa.field(name, declared), table.column(name).cast(declared))
    return table


def view_frames(uc: UseCase, validated: ValidatedMonth) -> dict[str, pd.DataFrame]:
    """Split a validated month into the rows of each feature view's partition."""
    key, ts = uc.entity.join_key, uc.event_timestamp
    frames = {}
    for view in uc.feature_views:
        columns = [f.name for f in uc.features_of_view(view.name)]
        if view.name == uc.label_view:
            frames[view.name] = validated.labels[[key, ts, uc.label.available_timestamp, *columns]]
        else:
            frames[view.name] = validated.snapshot[[key, ts, *columns]]
    return frames


def write_offline_partition(usecase: UseCase | str | None, month: str) -> dict[str, Any]:
    """Validate the month's raw data, then replace its partition of every view. Nothing is written on error.
    Rows of people erased earlier (the receipts of fairway.erasures) are left out: a delivery cannot bring them
    back."""
    uc = resolve(usecase)
    month = month_str(month)
    validated = validate_month(uc, month)  # raises before anything is written
    rows: dict[str, int] = {}
    hashes = erased_hashes(uc)
    for view, frame in view_frames(uc, validated).items():
        kept, erased = without_erased(uc, frame, hashes)
        if erased:
            log.warning("%s %s: %d row(s) of erased people left out", month, view, erased)
        write_parquet_atomic(partition_table(uc, kept.reset_index(drop=True)), offline_partition(uc, view, month))
        rows[view] = len(kept)
    log.info("offline partitions for %s written: %s", month, rows)
    return {"month": month, "rows": rows}


def materialize_window(uc: UseCase, month: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    start, end = month_bounds(month_str(month))
    return start - timedelta(days=uc.materialize_overlap_days), end


def materialize_month(usecase: UseCase | str | None, month: str) -> dict[str, Any]:
    """Load the month (plus the overlap for late data) into the online store, for every online view.

    The online store keeps the newest row per entity, so replaying an older month changes nothing.
    """
    uc = resolve(usecase)
    month = month_str(month)
    missing = [v.name for v in uc.feature_views if v.online and not offline_partition(uc, v.name, month).is_file()]
    if missing:
        raise FileNotFoundError(
            f"no offline partition for {month} in views {missing}: run write_offline_partition first"
        )
    start, end = materialize_window(uc, month)
    views = [v.name for v in uc.feature_views if v.online]
    store = get_store(uc)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*fetch_arrow_table", category=DeprecationWarning)
        store.materialize(start_date=start.to_pydatetime(), end_date=end.to_pydatetime(), feature_views=views)
    log.info("materialized %s for [%s, %s)", views, start, end)
    return {"month": month, "views": views, "start": start.isoformat(), "end": end.isoformat()}


def offline_row_counts(usecase: UseCase | str | None = None) -> pd.DataFrame:
    """Rows per month (index) and view (columns) in the offline store."""
    import pyarrow.parquet as pq

    uc = resolve(usecase)
    records = []
    for view in uc.feature_views:
        for file in sorted(paths().offline_view(uc.name, view.name).glob("*.parquet")):
            records.append({"view": view.name, "month": file.stem, "rows": pq.ParquetFile(file).metadata.num_rows})
    frame = pd.DataFrame(records, columns=["view", "month", "rows"])
    return frame.pivot(index="month", columns="view", values="rows").fillna(0).astype(int) if len(frame) else frame
