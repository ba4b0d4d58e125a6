"""Keep rules: the newest versions of each name a rule matches never expire (issue #14).

Run on SQLite and PostgreSQL: the sweep and its dry run honour the rules, ``explain``
names the rule, rules are events (views rebuild them; a rule deleted behind the log
stops the sweep), and bad selectors or silent weakening are refused.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from artifactstore_core import ArtifactStore
from artifactstore_core.errors import IntegrityError, InvalidInputError, NotFoundError
from artifactstore_core.schema import events, retention_keep_rules
from artifactstore_core.testing.clock import FrozenClock

from .conftest import GRACE

pytestmark = pytest.mark.integration

YEAR = dt.timedelta(days=365)


def _status(store: ArtifactStore, reference: str) -> str:
    return store.describe(reference).status


def _versions(store: ArtifactStore, name: str, count: int, klass: str = "transient") -> None:
    for n in range(count):
        store.put(name, {"f.txt": f"{name} {n}".encode()}, retention_class=klass)


def _sweep_a_year_later(store: ArtifactStore, clock: FrozenClock) -> list[str]:
    clock.advance(YEAR)
    result = store.sweep(grace=dt.timedelta(0))
    return sorted(f"{p.name}@{p.version}" for p in result.expired)


def test_without_a_rule_the_current_version_expires_like_any_other(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    _versions(tiered, "reports/daily", 2)
    assert _sweep_a_year_later(tiered, clock) == ["reports/daily@1", "reports/daily@2"]


def test_a_prefix_rule_keeps_the_current_version_and_its_bytes(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    rule = tiered.set_keep_rule("prefix:reports")
    assert (rule.selector, rule.keep_latest) == ("prefix:reports", 1)
    _versions(tiered, "reports/daily", 3)
    _versions(tiered, "other/daily", 1)
    clock.advance(YEAR)
    plan = tiered.plan_sweep(grace=dt.timedelta(0))
    assert sorted(p.reference for p in plan.expire) == [
        "other/daily@1", "reports/daily@1", "reports/daily@2",
    ]  # fmt: skip
    result = tiered.sweep(grace=dt.timedelta(0))
    assert sorted(p.reference for p in result.expired) == sorted(p.reference for p in plan.expire)
    assert _status(tiered, "reports/daily@3") == "active"
    assert tiered.read_bytes("reports/daily@3", "f.txt") == b"reports/daily 2"
    assert tiered.verify(references=["reports/daily@3"]).ok
    explanation = tiered.explain("reports/daily@3")
    assert explanation.kept_by == "prefix:reports"
    assert "the current version of 'reports/daily'" in explanation.verdict
    assert explanation.to_dict()["kept_by"] == "prefix:reports"
    # A new version takes over: the old current one goes at the next sweep.
    tiered.put("reports/daily", {"f.txt": b"new"}, retention_class="transient")
    assert _sweep_a_year_later(tiered, clock) == ["reports/daily@3"]
    assert tiered.explain("reports/daily@3").kept_by is None


def test_keep_latest_two_and_class_rules(tiered: ArtifactStore, clock: FrozenClock) -> None:
    tiered.set_keep_rule("class:transient", 2)
    _versions(tiered, "a", 3)
    _versions(tiered, "b", 2, klass="raw-evidence")
    assert _sweep_a_year_later(tiered, clock) == ["a@1", "b@1", "b@2"]
    assert [_status(tiered, f"a@{v}") for v in (2, 3)] == ["active", "active"]


def test_prefixes_match_whole_segments_only(tiered: ArtifactStore, clock: FrozenClock) -> None:
    tiered.set_keep_rule("prefix:team_a/daily")
    for name in ("team_a/daily", "team_a/daily/2026-01-01", "team_a/daily_v2", "teamXa/daily"):
        _versions(tiered, name, 1)
    assert _sweep_a_year_later(tiered, clock) == sorted(["team_a/daily_v2@1", "teamXa/daily@1"])


def test_a_newer_version_that_expired_does_not_make_an_older_one_stale(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    _versions(tiered, "n", 2)
    tiered.set_retention("n@1", expires_at=clock() + 2 * YEAR, reason="kept longer", override=False)
    clock.advance(YEAR)
    tiered.sweep(grace=dt.timedelta(0))  # n@2 expires, n@1 is not due yet
    assert [_status(tiered, "n@1"), _status(tiered, "n@2")] == ["active", "expired"]
    tiered.set_keep_rule("prefix:n")
    assert _sweep_a_year_later(tiered, clock) == []
    assert tiered.explain("n@1").kept_by == "prefix:n"


def test_rules_are_events_and_rebuild_identically(tiered: ArtifactStore) -> None:
    tiered.set_keep_rule("prefix:reports", 3, actor="alice")
    tiered.set_keep_rule("prefix:reports", 3)  # the same rule again: nothing recorded
    tiered.set_keep_rule("class:transient")
    with tiered.engine.connect() as conn:
        recorded = conn.execute(
            sa.select(events.c.event_type, events.c.actor).where(
                events.c.event_type.in_(["KeepRuleSet", "KeepRuleRemoved"])
            )
        ).all()
    assert [r.event_type for r in recorded] == ["KeepRuleSet", "KeepRuleSet"]
    assert recorded[0].actor == "alice"
    tiered.remove_keep_rule("class:transient", reason="no longer wanted")
    tiered.rebuild_views()
    assert tiered.check_views() == []
    assert [(r.selector, r.keep_latest) for r in tiered.keep_rules()] == [("prefix:reports", 3)]


def test_weakening_a_rule_needs_a_reason(tiered: ArtifactStore) -> None:
    tiered.set_keep_rule("prefix:reports", 3)
    with pytest.raises(InvalidInputError, match="lowering keep rule 'prefix:reports'"):
        tiered.set_keep_rule("prefix:reports", 1)
    with pytest.raises(InvalidInputError, match="give a reason"):
        tiered.remove_keep_rule("prefix:reports")
    assert tiered.set_keep_rule("prefix:reports", 1, reason="cost").keep_latest == 1
    with pytest.raises(NotFoundError, match=r"no keep rule 'prefix:other'.*prefix:reports"):
        tiered.remove_keep_rule("prefix:other", reason="x")


@pytest.mark.parametrize(
    ("selector", "count", "message"),
    [
        ("reports", 1, "invalid keep-rule selector 'reports'"),
        ("name:reports", 1, "invalid keep-rule selector 'name:reports'"),
        ("prefix:../x", 1, "invalid package name '../x'"),
        ("prefix:reports", 0, "keep_latest must be an integer from 1 to 1000, got 0"),
        ("prefix:reports", 10**6, "got 1000000"),
        ("class:", 1, "must not be empty"),
    ],
)
def test_bad_rules_are_refused_naming_the_value(
    tiered: ArtifactStore, selector: str, count: int, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        tiered.set_keep_rule(selector, count)
    assert tiered.keep_rules() == []


def test_a_rule_deleted_behind_the_log_stops_the_sweep(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    tiered.set_keep_rule("prefix:reports")
    _versions(tiered, "reports/daily", 1)
    with tiered.engine.begin() as conn:
        conn.execute(sa.delete(retention_keep_rules))
    clock.advance(YEAR)
    kept = r"reports/daily@1 .*kept by keep rule 'prefix:reports'"
    with pytest.raises(IntegrityError, match=kept):
        tiered.sweep(grace=GRACE)
    assert _status(tiered, "reports/daily@1") == "active"
    tiered.rebuild_views()
    assert _sweep_a_year_later(tiered, clock) == []
