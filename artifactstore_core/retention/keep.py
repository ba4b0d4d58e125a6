"""Keep rules as events: "keep the newest N live versions of each name this rule matches".

A rule is recorded (``KeepRuleSet`` / ``KeepRuleRemoved``) and projected into
``retention_keep_rules``; the sweep's "due" (``predicates.kept_by_rule``) and the log's
own check (``liveness.LogLiveness``) honour it, and ``explain`` names it. Setting a rule
or raising its count only keeps more; removing it or lowering its count lets packages go,
so those need a reason, which the event records.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from artifactstore_core.domain import events as ev
from artifactstore_core.domain.package import Package
from artifactstore_core.domain.retention import KeepRule, keeping_rule
from artifactstore_core.errors import InvalidInputError, NotFoundError
from artifactstore_core.ledger import Ledger
from artifactstore_core.retention import predicates
from artifactstore_core.schema import artifact_packages, retention_keep_rules

_ALL = sa.select(retention_keep_rules).order_by(retention_keep_rules.c.selector)


def load_rules(conn: sa.Connection) -> list[KeepRule]:
    """Every keep rule in force, by selector."""
    return [KeepRule(row.scope, row.pattern, row.keep_latest) for row in conn.execute(_ALL)]


def _current(conn: sa.Connection, selector: str) -> KeepRule | None:
    return next((r for r in load_rules(conn) if r.selector == selector), None)


def _need_reason(what: str, reason: str | None) -> None:
    if not reason or not reason.strip():
        raise InvalidInputError(f"{what} lets packages expire: give a reason")


def set_rule(
    ledger: Ledger, selector: str, keep_latest: int, *, reason: str | None, actor: str | None
) -> KeepRule:
    """Record rule ``selector`` keeping ``keep_latest`` versions (an identical rule records
    nothing); lowering a count needs ``reason``."""
    rule = KeepRule.parse(selector, keep_latest)

    def decide(conn: sa.Connection, _now: dt.datetime) -> list[ev.Event]:
        current = _current(conn, rule.selector)
        if current is not None and current.keep_latest == rule.keep_latest:
            return []
        if current is not None and rule.keep_latest < current.keep_latest:
            _need_reason(
                f"lowering keep rule {rule.selector!r} from {current.keep_latest} to "
                f"{rule.keep_latest} version(s)",
                reason,
            )
        return [ev.KeepRuleSet(selector=rule.selector, keep_latest=rule.keep_latest, reason=reason)]

    ledger.record(decide, actor=actor)
    return rule


def remove_rule(ledger: Ledger, selector: str, *, reason: str | None, actor: str | None) -> None:
    """Record the removal of rule ``selector``; ``NotFoundError`` lists the rules in force."""
    wanted = KeepRule.parse(selector).selector

    def decide(conn: sa.Connection, _now: dt.datetime) -> list[ev.Event]:
        if _current(conn, wanted) is None:
            known = ", ".join(r.selector for r in load_rules(conn)) or "none"
            raise NotFoundError(f"no keep rule {wanted!r}; rules in force: {known}")
        _need_reason(f"removing keep rule {wanted!r}", reason)
        return [ev.KeepRuleRemoved(selector=wanted, reason=reason)]

    ledger.record(decide, actor=actor)


def rule_keeping(conn: sa.Connection, package: Package) -> KeepRule | None:
    """The rule that keeps ``package`` now, if any."""
    p = artifact_packages
    newer = conn.execute(
        sa.select(predicates.newer_live_versions(p)).where(p.c.package_id == package.id)
    ).scalar_one()
    return keeping_rule(load_rules(conn), package.name, package.retention_class, newer)
