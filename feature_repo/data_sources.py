"""Sources: one per feature view, `<view>_source`, reading the view's monthly parquet partitions.

The feature_pipeline DAG writes the partitions (FAIRWAY_HOME/data/offline/<usecase>/<view>/<YYYY-MM>.parquet).
"""

import os

from fairway.features.definitions import for_repo

globals().update(for_repo(os.environ.get("FAIRWAY_USECASE", "credit_risk")).sources)
