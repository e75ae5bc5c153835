"""Feature views: features grouped by entity and grain, with TTLs, descriptions and catalogue tags.

credit_risk has three: customer_financials (model inputs, online), customer_demographics (protected
attributes, offline only: fairness evaluation) and customer_labels (observed outcomes, offline only).
"""

import os

from fairway.features.definitions import for_repo

globals().update(for_repo(os.environ.get("FAIRWAY_USECASE", "credit_risk")).views)
