"""fairway.fairness: which disparate impact is the worst one shown in tables."""

from __future__ import annotations

import math

from fairway.fairness import worst_disparate_impact


def test_worst_disparate_impact_is_the_furthest_from_parity_on_a_log_scale() -> None:
    assert worst_disparate_impact([0.9, 1.3, 0.95]) == 1.3  # 1.3 is further from 1 than 0.9 (x 1/0.9 = 1.11)
    assert worst_disparate_impact([0.7, 1.3]) == 0.7
    assert worst_disparate_impact([0.8, math.nan]) == 0.8
    assert worst_disparate_impact([0.0, 0.5]) == 0.0  # nobody of the group approved
    assert worst_disparate_impact([math.nan]) is None and worst_disparate_impact([]) is None
