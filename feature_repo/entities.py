"""Entities: who the features describe (for credit_risk, the `customer`, keyed by `customer_id`).

Every definition in this repo is built from the use-case config named by FAIRWAY_USECASE (default
credit_risk, see include/fairway/usecases/); `fairway catalogue show` prints the resulting catalogue.
"""

import os

from fairway.features.definitions import for_repo

entity = for_repo(os.environ.get("FAIRWAY_USECASE", "credit_risk")).entity
