"""The retention rules of ADR-0003 as SQL, over ``retention_state`` (or an alias of it).

The one home of "live", "due" and "shared": the sweep, tier moves and ``explain`` build
their queries from these. Each mirrors a pure function of ``domain.retention``, the
readable specification (``tests/unit/test_retention_rules.py`` runs both on one table).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from artifactstore_core.domain.retention import HOT
from artifactstore_core.schema import (
    artifact_files,
    artifact_packages,
    package_attestations,
    retention_keep_rules,
    retention_state,
)

Predicate = sa.ColumnElement[bool]


def live(state: Any) -> Predicate:
    """ADR-0003 "live": the package keeps its bytes while it is held or not expired
    (``domain.retention.is_live``). Expiry, not the clock, ends it: only the sweep expires
    a package, so a package due but not yet swept keeps its bytes (its expiry can still be
    extended, and a sweep with ``limit`` leaves some due packages for the next run)."""
    return sa.or_(state.c.on_hold.is_(True), state.c.status == "active")


def due(state: Any, now: dt.datetime) -> Predicate:
    """ADR-0003 "due": active, not held nor kept by a keep rule, its expiry reached at
    ``now``: the sweep at ``now`` expires it (``domain.retention.is_due``). Never NULL:
    SQL's third value would make ``NOT due`` unknown, so not kept, for a package that
    never expires."""
    return sa.and_(
        state.c.status == "active",
        state.c.on_hold.is_(False),
        state.c.expires_at.is_not(None),
        state.c.expires_at <= now,
        sa.not_(kept_by_rule(state)),
    )


def _newer_live(package: Any, *columns: Any) -> sa.Select[Any]:
    """``columns`` of the live versions of ``package``'s name (a row of
    ``artifact_packages`` or an alias) newer than it."""
    newer, newer_state = artifact_packages.alias("newer"), retention_state.alias("newer_state")
    return (
        sa.select(*(columns or (newer.c.version,)))
        .select_from(newer.join(newer_state, newer_state.c.package_id == newer.c.package_id))
        .where(newer.c.name == package.c.name, newer.c.version > package.c.version)
        .where(live(newer_state))
    )


def newer_live_versions(package: Any) -> sa.ScalarSelect[int]:
    """How many live versions of ``package``'s name are newer than it."""
    return _newer_live(package, sa.func.count()).scalar_subquery()


def rule_matches(rule: Any, package: Any, state: Any) -> Predicate:
    """Keep rule ``rule`` covers the package (``domain.retention.KeepRule.matches``)."""
    pattern_length = sa.func.length(rule.c.pattern)
    return sa.or_(
        sa.and_(rule.c.scope == "class", rule.c.pattern == state.c.retention_class),
        sa.and_(
            rule.c.scope == "prefix",
            sa.or_(
                package.c.name == rule.c.pattern,
                sa.func.substr(package.c.name, 1, pattern_length + 1) == rule.c.pattern + "/",
            ),
        ),
    )


def kept_by_rule(state: Any) -> sa.Exists:
    """A keep rule keeps the package: it matches the package and fewer than its
    ``keep_latest`` live versions of the name are newer (``domain.retention.keeping_rule``)."""
    package, rule = artifact_packages.alias("kept_package"), retention_keep_rules.alias("rule")
    return (
        sa.exists()
        .where(package.c.package_id == state.c.package_id)
        .where(rule_matches(rule, package, state))
        .where(
            # Keeping one version (the usual rule) needs no count: the first newer live
            # version found settles it (an index seek, not a scan of the name's versions).
            sa.case(
                (rule.c.keep_latest == 1, ~_newer_live(package).exists()),
                else_=newer_live_versions(package) < rule.c.keep_latest,
            )
        )
    )


def kept_by_sweep(state: Any, now: dt.datetime, through: uuid.UUID | None = None) -> Predicate:
    """Live after a sweep at ``now`` has expired what is due (``survives_sweep``): how a
    sweep *plan*, read before its expiry step, decides which bytes stay. ``through`` is the
    last package the plan expires when a ``limit`` cut the due list (due packages after it
    stay live until a later sweep)."""
    expiring = due(state, now)
    if through is not None:
        expiring = sa.and_(expiring, state.c.package_id <= through)
    return sa.and_(
        live(state), sa.not_(expiring), sa.not_(expires_with_subject(state, now, through))
    )


def expires_with_subject(
    state: Any, now: dt.datetime, through: uuid.UUID | None = None
) -> sa.Exists:
    """The package is an attestation whose subject a sweep at ``now`` expires (up to
    ``through``, as in ``kept_by_sweep``): the sweep expires it in the same transaction. An
    attestation has no expiry of its own, so it is never ``due`` by itself."""
    link, subject = package_attestations.alias("link"), retention_state.alias("subject_state")
    query = (
        sa.exists()
        .where(link.c.attestation_id == state.c.package_id)
        .where(subject.c.package_id == link.c.subject_id)
        .where(due(subject, now))
    )
    if through is not None:
        query = query.where(subject.c.package_id <= through)
    return query


def needs_copy(state: Any, tier: Any) -> Predicate:
    """The package needs its copy in ``tier``: its own tier, or hot once an archived
    package is restored (``domain.retention.tiers_holding``)."""
    return sa.or_(
        state.c.retrieval_tier == tier,
        sa.and_(
            tier == HOT,
            state.c.retrieval_tier == "archive",
            state.c.restore_status == "restored",
        ),
    )


def shared(
    address: Any,
    keeps: Callable[[Any], Predicate] = live,
    *,
    tier: Any = None,
    excluding: uuid.UUID | None = None,
) -> sa.Exists:
    """ADR-0003 "shared": a package (other than ``excluding``) that ``keeps`` (default:
    ``live``) has a file with blob ``address`` and, with ``tier`` given, needs its copy
    there. Deduplicated bytes go only when no such package remains."""
    files, state = artifact_files.alias("kept_files"), retention_state.alias("kept_state")
    query = (
        sa.exists()
        .where(files.c.content_address == address)
        .where(state.c.package_id == files.c.package_id)
        .where(keeps(state))
    )
    if tier is not None:
        query = query.where(needs_copy(state, tier))
    if excluding is not None:
        query = query.where(files.c.package_id != excluding)
    return query
