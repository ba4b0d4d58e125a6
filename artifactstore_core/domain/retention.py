"""Retention policy as pure functions: expiry, changes of class or expiry, live and due
packages, tiers. The SQL forms the sweep, tiering and explain run are in
``retention/predicates.py``; ``tests/unit/test_retention_rules.py`` pins that they agree."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from artifactstore_core.domain.limits import check_time
from artifactstore_core.domain.names import validate_class_name, validate_name
from artifactstore_core.errors import InvalidInputError, RetentionError

HOT = "hot"
TIERS = (HOT, "cold", "archive")
"""Tier names, warmest first: a class's transitions only ever move a package later in it."""
HOLD_KINDS = ("legal", "operational")
KEEP_SCOPES = ("class", "prefix")
MAX_KEEP_LATEST = 1000


@dataclass(frozen=True, slots=True)
class Transition:
    """Move a package's bytes to ``tier`` once it is ``after`` old."""

    after: dt.timedelta
    tier: str


@dataclass(frozen=True, slots=True)
class RetentionClass:
    """A retention class: default duration (``None`` = never expires), protection, transitions."""

    name: str
    duration: dt.timedelta | None
    protected: bool = False
    transitions: tuple[Transition, ...] = field(default=())

    @classmethod
    def from_row(cls, row: Any) -> RetentionClass:
        seconds = row.default_duration_seconds
        return cls(
            name=row.name,
            duration=None if seconds is None else dt.timedelta(seconds=seconds),
            protected=bool(row.protected),
            transitions=tuple(
                Transition(dt.timedelta(seconds=t["after_seconds"]), t["tier"])
                for t in (row.transitions or ())
            ),
        )

    def expiry(self, created_at: dt.datetime) -> dt.datetime | None:
        """When a package of this class created at ``created_at`` expires."""
        return None if self.duration is None else created_at + self.duration


def tiers_holding(retrieval_tier: str, restore_status: str | None) -> tuple[str, ...]:
    """The tiers whose copies a package needs: its own tier, and hot too once an archived
    package is restored (reads go there). SQL form: ``predicates.needs_copy``."""
    if retrieval_tier == "archive" and restore_status == "restored":
        return ("archive", HOT)
    return (retrieval_tier,)


def reading_tier(retrieval_tier: str) -> str:
    """The tier a package's files are read from: its own, or hot for an archived package
    (readable once restored there)."""
    return HOT if retrieval_tier == "archive" else retrieval_tier


def is_live(status: str, on_hold: bool) -> bool:
    """ADR-0003 "live": a package keeps its bytes (in ``tiers_holding``) while it is held
    or not expired. SQL form: ``predicates.live``."""
    return on_hold or status == "active"


def is_due(
    status: str,
    on_hold: bool,
    expires_at: dt.datetime | None,
    now: dt.datetime,
    kept_by_rule: bool = False,
) -> bool:
    """ADR-0003 "due": an active package, not held nor kept by a keep rule, whose expiry
    has come; the sweep at ``now`` expires it. SQL form: ``predicates.due``."""
    if kept_by_rule or status != "active" or on_hold:
        return False
    return expires_at is not None and expires_at <= now


def survives_sweep(
    status: str,
    on_hold: bool,
    expires_at: dt.datetime | None,
    now: dt.datetime,
    kept_by_rule: bool = False,
) -> bool:
    """Whether a package still keeps its bytes after a sweep at ``now``: live and not due.
    SQL form: ``predicates.kept_by_sweep``."""
    due = is_due(status, on_hold, expires_at, now, kept_by_rule)
    return is_live(status, on_hold) and not due


@dataclass(frozen=True, slots=True)
class KeepRule:
    """Keep the newest ``keep_latest`` live versions of each name the rule matches, whatever
    their expiry: ``class:<retention class>`` matches a package of that class,
    ``prefix:<name>`` a package named ``<name>`` or ``<name>/...`` (whole segments)."""

    scope: str
    pattern: str
    keep_latest: int

    @property
    def selector(self) -> str:
        return f"{self.scope}:{self.pattern}"

    def to_dict(self) -> dict[str, Any]:
        return {"selector": self.selector, "keep_latest": self.keep_latest}

    @classmethod
    def from_dict(cls, data: Any) -> KeepRule:
        return cls.parse(data["selector"], data["keep_latest"])

    @classmethod
    def parse(cls, selector: str, keep_latest: int = 1) -> KeepRule:
        """The rule ``selector`` names; ``InvalidInputError`` names a bad selector or count."""
        scope, sep, pattern = selector.partition(":") if isinstance(selector, str) else ("", "", "")
        if not sep or scope not in KEEP_SCOPES:
            raise InvalidInputError(
                f"invalid keep-rule selector {selector!r}: use 'class:<retention class>' or "
                "'prefix:<package name prefix>'"
            )
        if scope == "class":
            validate_class_name(pattern)
        else:
            validate_name(pattern)
        if type(keep_latest) is not int or not 1 <= keep_latest <= MAX_KEEP_LATEST:
            raise InvalidInputError(
                f"keep_latest must be an integer from 1 to {MAX_KEEP_LATEST}, got {keep_latest!r}"
            )
        return cls(scope, pattern, keep_latest)

    def matches(self, name: str, retention_class: str) -> bool:
        """Whether the rule covers a package of ``name`` in ``retention_class``."""
        if self.scope == "class":
            return retention_class == self.pattern
        return name == self.pattern or name.startswith(self.pattern + "/")


def keeping_rule(
    rules: Sequence[KeepRule], name: str, retention_class: str, newer_live: int
) -> KeepRule | None:
    """The rule that keeps a package of ``name`` in ``retention_class`` with ``newer_live``
    live versions of its name newer than it, if any (the one keeping most versions).
    SQL form: ``predicates.kept_by_rule``."""
    keeping = [r for r in rules if r.matches(name, retention_class) and newer_live < r.keep_latest]
    return max(keeping, key=lambda r: r.keep_latest, default=None)


def _later(a: dt.datetime | None, b: dt.datetime | None) -> bool:
    """Whether expiry ``a`` is strictly later than ``b`` (``None`` is never)."""
    if a is None:
        return b is not None
    return b is not None and a > b


@dataclass(frozen=True, slots=True)
class RetentionDecision:
    """The outcome of a requested change: new class and expiry, and whether it shortens."""

    retention_class: str
    expires_at: dt.datetime | None
    shortens: bool


def decide_change(
    *,
    created_at: dt.datetime,
    current: RetentionClass,
    current_expiry: dt.datetime | None,
    target: RetentionClass | None,
    expires_at: dt.datetime | None,
    clear_expiry: bool,
    override: bool,
    reason: str | None,
) -> RetentionDecision:
    """Apply the rules: extending is always allowed; shortening is refused for protected
    classes and needs ``override`` with a ``reason`` for the others."""
    new_class = target or current
    if expires_at is not None and clear_expiry:
        raise InvalidInputError("give an expiry or ask for none, not both")
    if expires_at is not None:
        new_expiry: dt.datetime | None = check_time(expires_at, "expiry")
    elif clear_expiry:
        new_expiry = None
    elif target is not None:
        new_expiry = target.expiry(created_at)
    else:
        raise InvalidInputError("nothing to change: give a retention class or an expiry")
    shortens = _later(current_expiry, new_expiry)
    if shortens:
        protected = [c.name for c in (current, new_class) if c.protected]
        if protected:
            raise RetentionError(
                f"retention class {protected[0]!r} is protected: its expiry "
                f"({current_expiry.isoformat() if current_expiry else 'never'}) cannot be "
                f"shortened to {new_expiry.isoformat() if new_expiry else 'never'}"
            )
        if not override:
            raise RetentionError(
                f"this shortens retention from "
                f"{current_expiry.isoformat() if current_expiry else 'never'} to "
                f"{new_expiry.isoformat() if new_expiry else 'never'}; pass override "
                "(--override) with a reason"
            )
        if not reason or not reason.strip():
            raise InvalidInputError("an override that shortens retention needs a reason")
    return RetentionDecision(new_class.name, new_expiry, shortens)


def due_transition(
    transitions: Sequence[Transition], created_at: dt.datetime, tier: str, now: dt.datetime
) -> str | None:
    """The tier a package should be in now per its class, if that differs from ``tier``."""
    target = None
    for transition in sorted(transitions, key=lambda t: t.after):
        if created_at + transition.after <= now:
            target = transition.tier
    if target is None or TIERS.index(target) <= TIERS.index(tier):
        return None
    return target
