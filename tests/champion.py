"""A champion made the way the DAGs make one (train, register, gate, approve, promote), for tests that need one."""

from __future__ import annotations

from typing import Any


def make_champion(uc: Any, window_end: str, length: int, candidate: str = "reweighing") -> str:
    from fairway import promotion
    from fairway.training import build_training_frame, register_best, train_candidate

    frame = build_training_frame(uc, window_end, length)
    registered = register_best(uc, [train_candidate(uc, frame, candidate)])
    gated = promotion.gate_candidate(uc, registered["version"])
    assert gated["decision"] == "pass", gated["reasons"]
    promotion.promote(uc, gated, promotion.approval_from_response(
        {"chosen_options": ["Approve"], "params_input": {"comment": "test"}, "responded_at": "2031-01-01T00:00:00+00:00",
         "responded_by_user": {"id": "t", "name": "tester"}}, gated))  # fmt: skip
    return str(registered["version"])
