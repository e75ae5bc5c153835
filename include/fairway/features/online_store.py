"""A SQLite online store that never lets an older row overwrite a newer one.

Feast's SQLite store upserts whatever a materialization hands it, so replaying an older month (a backfill, a
retry of last month's run) would put stale values online. Redis, the production online store, skips writes
whose event time is older than what it holds; this store does the same on SQLite. Configure it in
feature_store.yaml as `type: fairway.features.online_store.MonotonicSqliteOnlineStore`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

from feast import FeatureView, RepoConfig
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.sqlite import SqliteOnlineStore, SqliteOnlineStoreConfig, _quote_id, _table_id
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.utils import to_naive_utc

_Row = tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]
_CHUNK = 900  # SQLite's default limit on bound parameters is 999


class MonotonicSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    # Feast selects the store class by this literal; narrowing the parent's literal is intended.
    type: Literal["fairway.features.online_store.MonotonicSqliteOnlineStore"] = (
        "fairway.features.online_store.MonotonicSqliteOnlineStore"  # type: ignore[assignment]
    )


def _stored_form(timestamp: datetime) -> Any:
    """An event time as the SQLite store keeps it: through the adapter Feast registers for datetimes."""
    naive = to_naive_utc(timestamp)
    adapter = sqlite3.adapters.get((datetime, sqlite3.PrepareProtocol))
    return adapter(naive) if adapter else naive.isoformat(" ")


class MonotonicSqliteOnlineStore(SqliteOnlineStore):
    """SQLite online store whose writes keep, per entity, the row with the newest event time."""

    def _stored_event_times(self, config: RepoConfig, table: FeatureView, keys: Sequence[bytes]) -> dict[bytes, Any]:
        conn = self._get_conn(config)
        table_id = _table_id(config.project, table, config.registry.enable_online_feature_view_versioning)
        name = _quote_id(table_id)
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table_id,)).fetchone()
        if not exists:
            return {}
        stored: dict[bytes, Any] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            rows = conn.execute(
                f"SELECT entity_key, MAX(event_ts) FROM {name} WHERE entity_key IN ({','.join('?' * len(chunk))}) "
                "GROUP BY entity_key",
                chunk,
            ).fetchall()
            stored.update({key: ts for key, ts in rows if ts is not None})
        return stored

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[_Row],
        progress: Callable[[int], Any] | None,
    ) -> None:
        version = config.entity_key_serialization_version
        keys = [serialize_entity_key(row[0], entity_key_serialization_version=version) for row in data]
        stored = self._stored_event_times(config, table, keys)
        fresh: list[_Row] = []
        for key, row in zip(keys, data, strict=True):
            newest = stored.get(key)
            if newest is None or _stored_form(row[2]) >= newest:
                fresh.append(row)
        skipped = len(data) - len(fresh)
        super().online_write_batch(config, table, fresh, progress)
        if progress and skipped:
            progress(skipped)
