"""Human review and explanation of single decisions, from real answers of the served champion: `bentoml serve` in a
subprocess, POST /predict, then `fairway review` and `fairway explain` on the answer's request id."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fairway import cli
from fairway.data import read_month
from fairway.records import DecisionLog, decision_log_url
from fairway.review import ReviewLog, delete_reviews, find_decision
from tests.bento.serving import served_champion


@pytest.fixture(scope="module")
def answers(tmp_path_factory) -> dict:
    """Two customers' answers from the served champion (1,500 customers, the last two months online)."""
    with served_champion(tmp_path_factory, "review-home") as world:
        uc, home, version, url = world["uc"], world["home"], world["version"], world["url"]
        snapshot, _ = read_month(uc, world["months"][-1])
        bodies, customers = [], []
        for i in range(40):  # a declined and another customer with a different score
            customer = str(snapshot["customer_id"].iloc[i])
            answer = httpx.post(f"{url}/predict", json={"customer_id": customer}, timeout=20)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            if (not bodies and body["decision"] == "decline" and body["reasons"]) or (
                bodies and f"{body['score']:.3f}" != f"{bodies[0]['score']:.3f}"):  # fmt: skip
                bodies.append(body)
                customers.append(customer)
            if len(bodies) == 2:
                break
        assert len(bodies) == 2, "no declined customer among the first 40"
        yield {"uc": uc, "home": home, "version": version, "answers": bodies, "customers": customers,
               "snapshot": snapshot}  # fmt: skip


def fairway(*args: str) -> tuple[int, str, str]:
    """`fairway ...` in this process (the CLI's main), with its exit code, stdout and stderr."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as exit_:  # argparse refuses an argument
            code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_an_override_is_recorded_linked_to_the_answer_and_never_changes_the_decision(answers) -> None:
    uc, first = answers["uc"], answers["answers"][0]
    log = DecisionLog(decision_log_url(uc))
    before = log.read().set_index("request_id").loc[first["request_id"]].to_dict()
    code, out, err = fairway("review", "--request-id", first["request_id"], "--decision", "approve", "--by",
                             "Jana Novak", "--reason", "Income verified with current payslips")  # fmt: skip
    assert code == 0, err
    assert f"override of {first['request_id']} recorded: decline -> approve by Jana Novak" in out
    assert out.strip().endswith("effective decision: approve")
    reviews = ReviewLog(uc).of(first["request_id"])
    assert [(r["kind"], r["original_decision"], r["decision"], r["reviewer"], r["channel"]) for r in reviews] == [
        ("override", "decline", "approve", "Jana Novak", "cli")
    ]
    assert reviews[0]["model_version"] == first["model_version"] == answers["version"]
    decision = find_decision(uc, first["request_id"])
    assert reviews[0]["subject"] == decision.subject and decision.subject is not None
    after = log.read().set_index("request_id").loc[first["request_id"]].to_dict()
    assert after == before  # the decision record is untouched: reviews are their own rows
    # a contest outcome later: appended, the latest review is the effective decision
    code, out, err = fairway("review", "--request-id", first["request_id"], "--decision", "decline", "--by",
                             "Ola Berg", "--reason", "Payslips were not the customer's", "--kind", "contest")  # fmt: skip
    assert code == 0, err
    assert out.strip().endswith("effective decision: decline")
    assert [r["decision"] for r in ReviewLog(uc).of(first["request_id"])] == ["approve", "decline"]


def test_the_explanation_names_the_decision_and_its_reasons_and_nobody_else(answers, tmp_path: Path) -> None:
    uc, (first, other) = answers["uc"], answers["answers"]
    out_file = tmp_path / "letters" / "explanation.md"
    code, out, err = fairway("explain", "--request-id", first["request_id"], "--out", str(out_file))
    assert code == 0, err
    assert f"wrote {out_file}" in out
    text = out_file.read_text()
    assert first["request_id"] in text and f"version {first['model_version']}" in text
    assert "The model's decision: **decline**" in text
    assert f"{first['score']:.3f}" in text and f"below {first['threshold']:.3f} is approved" in text
    for reason in first["reasons"]:  # every reason code, in plain words with the person's value and the effect
        described = uc.feature(reason["feature"]).description.rstrip(".")
        assert f"{reason['feature']} ({described})" in text
        assert f"{100 * reason['effect']:.1f} percentage points" in text
    assert "does not use sex, age, citizenship" in text
    assert "**To be completed by the provider:**" in text and "contest" in text
    # the reviews of the first test are in it, without the reviewer's name
    assert "Income verified with current payslips" in text and "Jana Novak" not in text
    # nobody else's decision: not the other request, its score, nor any customer id (the person's own included)
    assert other["request_id"] not in text and f"{other['score']:.3f}" not in text
    assert not [c for c in answers["snapshot"]["customer_id"].astype(str) if c in text]
    code, printed, _ = fairway("explain", "--request-id", first["request_id"])
    assert code == 0 and printed == text


def test_unknown_ids_and_invalid_reviews_are_refused_with_a_message(answers) -> None:
    uc, first = answers["uc"], answers["answers"][0]
    before = len(ReviewLog(uc).of(first["request_id"]))
    for args, message in (
        (["--request-id", "no-such-request", "--decision", "approve", "--by", "A", "--reason", "r"],
         "no decision of 'credit_risk' has request id 'no-such-request'"),
        (["--request-id", first["request_id"], "--decision", "approve", "--by", "  ", "--reason", "r"],
         "the reviewer (--by) is empty"),
        (["--request-id", first["request_id"], "--decision", "approve", "--by", "A", "--reason", ""],
         "the reason (--reason) is empty"),
        (["--request-id", first["request_id"], "--decision", "maybe", "--by", "A", "--reason", "r"],
         "invalid choice: 'maybe'"),
        (["--request-id", first["request_id"], "--decision", "approve", "--by", "A", "--reason", "r", "--kind", "x"],
         "invalid choice: 'x'"),
        (["--decision", "approve", "--by", "A", "--reason", "r"], "name the decision: --request-id ID"),
    ):  # fmt: skip
        code, out, err = fairway("review", *args)
        assert code != 0 and message in err, (args, code, err)
    assert len(ReviewLog(uc).of(first["request_id"])) == before
    code, _, err = fairway("explain", "--request-id", "no-such-request")
    assert code == 1 and "no decision of 'credit_risk' has request id 'no-such-request'" in err


def test_the_installed_command_exits_non_zero_on_an_unknown_id(answers) -> None:
    fairway_bin = str(Path(sys.executable).parent / "fairway")
    done = subprocess.run([fairway_bin, "review", "--request-id", "C0000001", "--decision", "decline", "--by", "A",
                           "--reason", "r"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1 and "no decision of 'credit_risk' has request id 'C0000001'" in done.stderr


def test_a_batch_decision_is_reviewed_by_customer_and_month_and_erased_with_its_subject(answers) -> None:
    from fairway.inference import pin_champion, score_month
    from fairway.records import pseudonym

    uc, month = answers["uc"], "2024-05"
    score_month(uc, month, pin_champion(uc), "review-batch")
    customer = answers["customers"][1]
    code, out, err = fairway("review", "--customer-id", customer, "--month", month, "--decision", "decline", "--by",
                             "Jana Novak", "--reason", "Arrears known to the branch")  # fmt: skip
    assert code == 0, err
    request_id = f"batch-{month}-{pseudonym(customer)}"
    assert f"override of {request_id} recorded" in out
    code, out, err = fairway("explain", "--request-id", request_id)
    assert code == 0 and f"monthly assessment of {month}" in out and "Arrears known to the branch" in out
    assert customer not in out
    assert delete_reviews(uc, subject=pseudonym(customer)) == 1
    assert ReviewLog(uc).of(request_id) == []
    database = Path(decision_log_url(uc).removeprefix("sqlite:///"))
    for path in database.parent.glob(database.name + "*"):  # the database, its WAL: no byte of the review is left
        data = path.read_bytes()  # (the pseudonym itself is there: the customer's online decision of the fixture)
        assert b"Arrears known to the branch" not in data and request_id.encode() not in data, path
    code, _, err = fairway("explain", "--request-id", f"batch-2031-01-{pseudonym(customer)}")
    assert code == 1 and "no decision" in err
    assert json.dumps(find_decision(uc, request_id).reasons)  # the batch record's reason codes are read
