"""Point-in-time frames: features as they were known at each entity row's timestamp.

`historical_features` goes through a Feast feature service (what training and batch scoring use).
`merge_asof_frame` is the same join in plain pandas: the reference the tests compare Feast against and the
floor the benchmark measures Feast against.
"""

from __future__ import annotations

import warnings
from datetime import timedelta

import pandas as pd
from feast import FeatureStore

from fairway.config import UseCase

FEAST_EVENT_TIMESTAMP = "event_timestamp"


def historical_features(store: FeatureStore, uc: UseCase, entity_df: pd.DataFrame, service: str) -> pd.DataFrame:
    """One row per entity row, in the input order, with the service's features as of the row's timestamp.

    Rows whose entity has no value inside the view's TTL keep their place with empty features.
    """
    key, ts = uc.entity.join_key, uc.event_timestamp
    missing = [c for c in (key, ts) if c not in entity_df]
    if missing:
        raise ValueError(f"entity rows need the columns {missing}")
    rows = entity_df.reset_index(drop=True).copy()
    rows[ts] = pd.to_datetime(rows[ts], utc=True).astype("datetime64[us, UTC]")
    order = "_fairway_row"
    rows[order] = range(len(rows))
    # Feast's own name for the entity timestamp (it announces any other name it has to infer)
    rows = rows.rename(columns={ts: FEAST_EVENT_TIMESTAMP})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*fetch_arrow_table", category=DeprecationWarning)
        frame = store.get_historical_features(entity_df=rows, features=store.get_feature_service(service)).to_df()
    if len(frame) != len(rows):
        raise RuntimeError(f"feature retrieval returned {len(frame)} rows for {len(rows)} entity rows")
    frame = frame.rename(columns={FEAST_EVENT_TIMESTAMP: ts})
    return frame.sort_values(order).drop(columns=order).reset_index(drop=True)


def merge_asof_frame(
    entity_df: pd.DataFrame, features: pd.DataFrame, key: str, ts: str, columns: list[str], ttl: timedelta
) -> pd.DataFrame:
    """Latest feature row at or before each entity row's timestamp and no older than `ttl`, in input order."""
    rows = entity_df.reset_index(drop=True).copy()
    rows["_fairway_row"] = range(len(rows))
    rows[ts] = pd.to_datetime(rows[ts], utc=True).astype("datetime64[us, UTC]")
    right = features[[key, ts, *columns]].rename(columns={ts: "_feature_ts"})
    right["_feature_ts"] = pd.to_datetime(right["_feature_ts"], utc=True).astype("datetime64[us, UTC]")
    joined = pd.merge_asof(
        rows.sort_values(ts),
        right.sort_values("_feature_ts"),
        left_on=ts,
        right_on="_feature_ts",
        by=key,
        direction="backward",
        tolerance=pd.Timedelta(ttl),
    )
    return joined.sort_values("_fairway_row").drop(columns=["_fairway_row", "_feature_ts"]).reset_index(drop=True)
