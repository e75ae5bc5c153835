"""The Feast objects of a use case, built from its config: entity, sources, feature views, feature services.

`feature_repo/` exposes these to `feast apply`; the catalogue check and the pipelines read the same objects,
so there is one definition of every feature, its type, its description and its catalogue tags.

Missing values: Feast's types hold nulls, so a `nullable` feature has the same Feast type as any other and carries
the tag `nullable: "true"`. Its nulls stay nulls through the offline partitions (int64/double/string columns with
nulls, `ARROW_TYPES`), the point-in-time join (NaN in the frame of retrieval.historical_features) and the online
store (None).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cache

import pyarrow as pa
from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.data_format import ParquetFormat
from feast.types import Bool, Float64, Int64, PrimitiveFeastType, String

from fairway.config import FeatureSpec, UseCase, load_usecase, paths

FEAST_TYPES: dict[str, PrimitiveFeastType] = {"float": Float64, "int": Int64, "string": String, "bool": Bool}
# the column types of the offline partitions, whatever the raw file held (e.g. float64 with NaN for a nullable int)
ARROW_TYPES: dict[str, pa.DataType] = {"float": pa.float64(), "int": pa.int64(), "string": pa.string(),
                                       "bool": pa.bool_()}  # fmt: skip


@dataclass(frozen=True)
class FeastObjects:
    entity: Entity
    sources: dict[str, FileSource]
    views: dict[str, FeatureView]
    services: dict[str, FeatureService]


def source_name(view: str) -> str:
    return f"{view}_source"


def partition_dir(uc: UseCase, view: str) -> str:
    """The offline store of a view: a folder with one parquet file per month under FAIRWAY_HOME/data/offline.

    Readers (DuckDB, pyarrow) skip hidden files, so a partition being written under its temporary name
    (`.<month>.parquet.<id>.tmp`) is never read half-written.
    """
    return str(paths().offline_view(uc.name, view))


def feature_tags(feature: FeatureSpec) -> dict[str, str]:
    """The Feast tags of a feature: its catalogue tags, and `nullable: "true"` when it may be missing."""
    return {**feature.tags.as_feast_tags(), **({"nullable": "true"} if feature.nullable else {})}


def build(uc: UseCase) -> FeastObjects:
    entity = Entity(
        name=uc.entity.name,
        join_keys=[uc.entity.join_key],
        value_type=ValueType.STRING,
        description=uc.entity.description,
        tags=uc.entity.tags.as_feast_tags(),
        owner=uc.owner,
    )
    sources: dict[str, FileSource] = {}
    views: dict[str, FeatureView] = {}
    for spec in uc.feature_views:
        is_label_view = spec.name == uc.label_view
        source = FileSource(
            name=source_name(spec.name),
            path=partition_dir(uc, spec.name),
            file_format=ParquetFormat(),
            timestamp_field=uc.event_timestamp,
            created_timestamp_column=uc.label.available_timestamp if is_label_view else "",
            description=f"Monthly partitions of {spec.name}, written by the feature_pipeline DAG.",
            owner=uc.owner,
        )
        features = uc.features_of_view(spec.name)
        schema = [
            Field(name=f.name, dtype=FEAST_TYPES[f.dtype], description=f.description, tags=feature_tags(f))
            for f in features
        ]
        view_tags = {
            "usecase": uc.name,
            "personal_data": str(any(f.tags.personal_data for f in features)).lower(),
            "protected": str(any(f.tags.protected for f in features)).lower(),
            "label": str(is_label_view).lower(),
        }
        sources[source.name] = source
        views[spec.name] = FeatureView(
            name=spec.name,
            entities=[entity],
            ttl=timedelta(days=spec.ttl_days),
            schema=schema,
            online=spec.online,
            source=source,
            description=spec.description,
            owner=uc.owner,
            tags=view_tags,
        )
    services: dict[str, FeatureService] = {}
    for service in uc.feature_services:
        by_view: dict[str, list[str]] = {}
        for name in service.features:
            by_view.setdefault(uc.feature(name).view, []).append(name)
        services[service.name] = FeatureService(
            name=service.name,
            features=[views[view][names] for view, names in by_view.items()],
            description=service.description,
            owner=uc.owner,
            tags={"usecase": uc.name, "purpose": service.purpose},
        )
    return FeastObjects(entity, sources, views, services)


@cache
def _cached(name: str, home: str) -> FeastObjects:
    return build(load_usecase(name))


def for_repo(name: str) -> FeastObjects:
    """The objects `feature_repo/` exposes: built once per use case and FAIRWAY_HOME in a process.

    Also creates the folders of the store, so that `feast apply` works on a fresh FAIRWAY_HOME (Feast
    imports the repo before it opens the registry, and creates only the last folder of its paths).
    """
    objects = _cached(name, str(paths().home))
    paths().feast_project(name).mkdir(parents=True, exist_ok=True)
    for view in objects.views:
        paths().offline_view(name, view).mkdir(parents=True, exist_ok=True)
    return objects
