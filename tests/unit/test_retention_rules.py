"""The retention rules of ADR-0003, as tables: each row is one case of the specification.

``domain.retention`` holds the rules as pure functions; ``retention/predicates.py`` holds
their SQL forms, and ``tests/retention/test_predicates.py`` runs the same tables there.
"""

from __future__ import annotations

import datetime as dt

import pytest

from artifactstore_core.domain.retention import (
    RetentionClass,
    Transition,
    decide_change,
    due_transition,
    is_due,
    is_live,
    reading_tier,
    survives_sweep,
    tiers_holding,
)
from artifactstore_core.errors import InvalidInputError, RetentionError

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
CREATED = NOW - 10 * DAY

# (status, on_hold, expires_at, live, due, survives a sweep at NOW)
STATES = [
    ("active", False, None, True, False, True),
    ("active", False, NOW + DAY, True, False, True),
    ("active", False, NOW, True, True, False),  # due at the instant of expiry
    ("active", False, NOW - DAY, True, True, False),  # due, not swept yet: still live
    ("active", True, NOW - DAY, True, False, True),  # a hold stops expiry
    ("expired", False, NOW - DAY, False, False, False),
    ("expired", True, NOW - DAY, True, False, True),  # held after expiry: bytes kept
]


@pytest.mark.parametrize(("status", "on_hold", "expires_at", "live", "due", "survives"), STATES)
def test_live_due_and_survival_by_state(
    status: str, on_hold: bool, expires_at: dt.datetime | None, live: bool, due: bool,
    survives: bool,
) -> None:  # fmt: skip
    assert is_live(status, on_hold) is live
    assert is_due(status, on_hold, expires_at, NOW) is due
    assert survives_sweep(status, on_hold, expires_at, NOW) is survives


@pytest.mark.parametrize(
    ("tier", "restore_status", "holding", "read_from"),
    [
        ("hot", None, ("hot",), "hot"),
        ("cold", None, ("cold",), "cold"),
        ("archive", None, ("archive",), "hot"),
        ("archive", "in_progress", ("archive",), "hot"),
        ("archive", "restored", ("archive", "hot"), "hot"),
    ],
)
def test_tiers_a_package_needs_and_reads_from(
    tier: str, restore_status: str | None, holding: tuple[str, ...], read_from: str
) -> None:
    assert tiers_holding(tier, restore_status) == holding
    assert reading_tier(tier) == read_from


TRANSITIONS = (Transition(30 * DAY, "cold"), Transition(365 * DAY, "archive"))


@pytest.mark.parametrize(
    ("age", "tier", "target"),
    [
        (29 * DAY, "hot", None),
        (30 * DAY, "hot", "cold"),
        (31 * DAY, "cold", None),  # already there
        (400 * DAY, "hot", "archive"),  # the latest transition due wins
        (400 * DAY, "cold", "archive"),
        (40 * DAY, "archive", None),  # never back to a warmer tier
    ],
)
def test_due_transition(age: dt.timedelta, tier: str, target: str | None) -> None:
    assert due_transition(TRANSITIONS, NOW - age, tier, NOW) == target


RAW = RetentionClass("raw-evidence", 90 * DAY)
SHORT = RetentionClass("transient", 7 * DAY)
RELEASE = RetentionClass("release-evidence", 3650 * DAY, protected=True)
FOREVER = RetentionClass("permanent-record", None, protected=True)
RAW_EXPIRY = CREATED + 90 * DAY

# (current, target class, expires_at, clear, override, reason) -> (class, expiry, shortens)
ALLOWED = [
    (RAW, None, RAW_EXPIRY + DAY, False, False, None, ("raw-evidence", RAW_EXPIRY + DAY, False)),
    (RAW, RELEASE, None, False, False, None, ("release-evidence", CREATED + 3650 * DAY, False)),
    (RAW, None, None, True, False, None, ("raw-evidence", None, False)),
    (RAW, SHORT, None, False, True, "cleanup", ("transient", CREATED + 7 * DAY, True)),
    (RAW, None, NOW, False, True, "gdpr", ("raw-evidence", NOW, True)),
    (RELEASE, FOREVER, None, False, False, None, ("permanent-record", None, False)),
]


@pytest.mark.parametrize(
    ("current", "target", "expires_at", "clear", "override", "reason", "outcome"), ALLOWED
)
def test_changes_that_are_allowed(
    current: RetentionClass, target: RetentionClass | None, expires_at: dt.datetime | None,
    clear: bool, override: bool, reason: str | None,
    outcome: tuple[str, dt.datetime | None, bool],
) -> None:  # fmt: skip
    decision = decide_change(
        created_at=CREATED, current=current, current_expiry=current.expiry(CREATED),
        target=target, expires_at=expires_at, clear_expiry=clear, override=override,
        reason=reason,
    )  # fmt: skip
    assert (decision.retention_class, decision.expires_at, decision.shortens) == outcome


# (current, target class, expires_at, clear, override, reason) -> error, message
REFUSED = [
    (RAW, SHORT, None, False, False, None, RetentionError, "pass override"),
    (RAW, None, NOW, False, True, None, InvalidInputError, "needs a reason"),
    (RAW, None, NOW, False, True, "  ", InvalidInputError, "needs a reason"),
    (RELEASE, RAW, None, False, True, "why", RetentionError, "'release-evidence' is protected"),
    (RAW, RELEASE, NOW, False, True, "why", RetentionError, "'release-evidence' is protected"),
    (FOREVER, None, NOW + DAY, False, True, "x", RetentionError, "'permanent-record' is protected"),
    (RAW, None, NOW, True, False, None, InvalidInputError, "not both"),
    (RAW, None, None, False, False, None, InvalidInputError, "nothing to change"),
]


@pytest.mark.parametrize(
    ("current", "target", "expires_at", "clear", "override", "reason", "error", "message"),
    REFUSED,
)
def test_changes_that_are_refused(
    current: RetentionClass, target: RetentionClass | None, expires_at: dt.datetime | None,
    clear: bool, override: bool, reason: str | None, error: type[Exception], message: str,
) -> None:  # fmt: skip
    with pytest.raises(error, match=message):
        decide_change(
            created_at=CREATED, current=current, current_expiry=current.expiry(CREATED),
            target=target, expires_at=expires_at, clear_expiry=clear, override=override,
            reason=reason,
        )  # fmt: skip
