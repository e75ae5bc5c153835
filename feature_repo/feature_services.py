"""Feature services, one model version's feature list each, named `<purpose>_v<N>`.

credit_risk: credit_model_v1 (model inputs), fairness_audit_v1 (protected attributes, evaluation only)
and credit_labels_v1 (outcomes). `fairway catalogue check` refuses a model-input service that holds a
protected or proxy-risk feature without a justification tag.
"""

import os

from fairway.features.definitions import for_repo

globals().update(for_repo(os.environ.get("FAIRWAY_USECASE", "credit_risk")).services)
