"""Keep rules over HTTP: set, list and remove (issue #14). A prefix rule that keeps more
needs ``write`` on every name it can match; class rules, lowering and removal need
``retention-admin``."""

from __future__ import annotations

import pytest

from tests.http.conftest import LiveServer, assert_problem, issue_token

pytestmark = pytest.mark.integration

RULES = "/v1/retention/keep-rules"


def test_keep_rules_are_set_listed_and_removed(gateway: LiveServer, admin_secret: str) -> None:
    with gateway.client(admin_secret) as client:
        answer = client.put(f"{RULES}/prefix:reports/daily", json={"keep_latest": 2})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"selector": "prefix:reports/daily", "keep_latest": 2}
        assert client.get(RULES).json() == {"items": [answer.json()]}
        lowered = client.put(f"{RULES}/prefix:reports/daily", json={"keep_latest": 1})
        assert_problem(lowered, 400, "INVALID_INPUT")
        assert "give a reason" in lowered.json()["detail"]
        assert_problem(client.delete(f"{RULES}/prefix:reports/daily"), 400, "INVALID_INPUT")
        removed = client.delete(f"{RULES}/prefix:reports/daily", params={"reason": "done"})
        assert removed.status_code == 204
        assert client.get(RULES).json() == {"items": []}
        assert_problem(client.put(f"{RULES}/name:x", json={}), 400, "INVALID_INPUT")
        refused = client.put(f"{RULES}/prefix:x", json={"keep_latest": 0})
        assert "keep_latest" in assert_problem(refused, 400, "INVALID_INPUT")["detail"]
    assert [r.selector for r in gateway.store.keep_rules()] == []


def test_who_may_set_which_rule(sqlite_gateway: LiveServer) -> None:
    store = sqlite_gateway.store
    team_admin = issue_token(store, "package:team/**:retention-admin")
    team_writer = issue_token(store, "package:team/**:read,write")
    with sqlite_gateway.client(team_writer) as client:
        keep_two = client.put(f"{RULES}/prefix:team/daily", json={"keep_latest": 2})
        assert keep_two.status_code == 200, keep_two.text  # keeps more: write suffices
        assert_problem(client.put(f"{RULES}/prefix:other", json={}), 404, "PACKAGE_UNKNOWN")
        assert_problem(client.put(f"{RULES}/class:transient", json={}), 403, "DENIED")
        lower = client.put(f"{RULES}/prefix:team/daily", json={"keep_latest": 1, "reason": "x"})
        assert "retention-admin" in assert_problem(lower, 403, "DENIED")["detail"]
        gone = client.delete(f"{RULES}/prefix:team/daily", params={"reason": "x"})
        assert_problem(gone, 403, "DENIED")
    with sqlite_gateway.client(team_admin) as client:
        assert_problem(client.put(f"{RULES}/class:transient", json={}), 403, "DENIED")
        lower = client.put(f"{RULES}/prefix:team/daily", json={"keep_latest": 1, "reason": "x"})
        assert lower.status_code == 200, lower.text
        assert client.get(RULES).json()["items"] == [
            {"selector": "prefix:team/daily", "keep_latest": 1}
        ]
    assert [(r.selector, r.keep_latest) for r in store.keep_rules()] == [("prefix:team/daily", 1)]
