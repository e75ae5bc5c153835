"""Assets through which Fairway's pipelines hand over to each other (one definition, imported by each file)."""

from airflow.sdk import Asset

FEATURES = Asset(name="fairway_features", uri="fairway://features", group="fairway")
MODEL_CANDIDATE = Asset(name="fairway_model_candidate", uri="fairway://model/candidate", group="fairway")
CHAMPION_MODEL = Asset(name="fairway_champion_model", uri="fairway://model/champion", group="fairway")
RETRAINING_REQUEST = Asset(name="fairway_retraining_request", uri="fairway://model/retraining-request", group="fairway")
PREDICTIONS = Asset(name="fairway_predictions", uri="fairway://records/predictions", group="fairway")
