"""Assets through which Fairway's pipelines hand over to each other (one definition, imported by each file)."""

from airflow.sdk import Asset

FEATURES = Asset(name="fairway_features", uri="fairway://features", group="fairway")
