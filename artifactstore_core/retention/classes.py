"""Retention class definitions as events: recorded once, and checked before a sweep.

The migration seeds ``retention_classes``; ``record_definitions`` records those rows as
``RetentionClassDefined`` events the first time a registry opens, after which the table
is a projection like the others (``views check`` reports a class changed behind the log,
``views rebuild`` restores it). ``check_definitions`` compares the table with the log and
``check_protected_expiries`` a protected package's expiry with its class's recorded
definition, so that a sweep never acts on a definition the log does not hold.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from artifactstore_core.config import READ_ONLY, is_read_only
from artifactstore_core.domain import events as ev
from artifactstore_core.domain.names import validate_class_name
from artifactstore_core.domain.retention import RetentionClass
from artifactstore_core.errors import IntegrityError, UnknownRetentionClassError
from artifactstore_core.eventlog import EventLog
from artifactstore_core.ledger import Ledger
from artifactstore_core.schema import artifact_packages, events, retention_classes

SYSTEM_ACTOR = "artifactstore"
"""The actor of events the registry records by itself."""
FIELDS = ("description", "default_duration_seconds", "protected", "transitions")
NOTHING_RECORDED = (
    "no retention class definitions are recorded in the event log yet; record them with "
    "`artifactstore migrate` (or open the registry with migrate=True)"
)
_ANY_DEFINITION = (
    sa.select(events.c.sequence)
    .where(events.c.event_type == ev.RetentionClassDefined.event_type)
    .limit(1)
)


_CLASS_BY_NAME = sa.select(retention_classes).where(
    retention_classes.c.name == sa.bindparam("name")
)


def load_class(conn: sa.Connection, name: str) -> RetentionClass:
    """Retention class ``name``; ``UnknownRetentionClassError`` lists the known ones."""
    row = conn.execute(_CLASS_BY_NAME, {"name": validate_class_name(name)}).first()
    if row is None:
        known = conn.execute(sa.select(retention_classes.c.name).order_by(retention_classes.c.name))
        raise UnknownRetentionClassError(name, (r.name for r in known))
    return RetentionClass.from_row(row)


def record_definitions(engine: sa.Engine) -> int:
    """Record every class of ``retention_classes`` as an event unless some already are.

    Idempotent and safe against concurrent openers (re-checked under the chain lock);
    a read-only registry is left as it is. Returns the number of events recorded.
    """
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        if conn.execute(_ANY_DEFINITION).first() is not None:
            return 0
    if is_read_only(engine):
        return 0

    def decide(conn: sa.Connection, _now: dt.datetime) -> list[ev.Event]:
        if conn.execute(_ANY_DEFINITION).first() is not None:
            return []  # a concurrent opener recorded them first
        rows = conn.execute(sa.select(retention_classes).order_by(retention_classes.c.name))
        return [
            ev.RetentionClassDefined(name=row.name, **{f: getattr(row, f) for f in FIELDS})
            for row in rows
        ]

    return len(Ledger(engine, actor=SYSTEM_ACTOR).record(decide))


def recorded_definitions(conn: sa.Connection) -> dict[str, dict[str, Any]]:
    """The latest recorded definition of each class, by name."""
    latest: dict[str, dict[str, Any]] = {}
    for item in EventLog().read(conn, event_types=[ev.RetentionClassDefined.event_type]):
        payload = item.event.to_payload()
        latest[payload["name"]] = payload
    return latest


def definition_problems(conn: sa.Connection) -> list[str]:
    """Where ``retention_classes`` differs from the recorded definitions, one line each."""
    recorded = recorded_definitions(conn)
    if not recorded:
        return [NOTHING_RECORDED]
    problems = []
    for row in conn.execute(sa.select(retention_classes).order_by(retention_classes.c.name)):
        logged = recorded.pop(row.name, None)
        if logged is None:
            problems.append(f"retention class {row.name!r} has no recorded definition")
            continue
        changed = []
        for name in FIELDS:
            live, expected = getattr(row, name), logged[name]
            if name == "protected":
                live = bool(live)
            if live != expected:
                changed.append(f"{name} is {live!r} (recorded: {expected!r})")
        if changed:
            problems.append(f"retention class {row.name!r}: {', '.join(changed)}")
    problems.extend(f"retention class {name!r} is recorded but missing" for name in recorded)
    return problems


def check_definitions(conn: sa.Connection) -> None:
    """Raise ``IntegrityError`` naming the first class (and fields) changed behind the log."""
    problems = definition_problems(conn)
    if problems == [NOTHING_RECORDED]:
        raise IntegrityError(f"{NOTHING_RECORDED}; refusing to act on unrecorded definitions")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise IntegrityError(
            f"{problems[0]}{more}; refusing to act on a definition the event log does not "
            "hold: see `artifactstore views check`, `artifactstore views rebuild` restores it"
        )


def check_protected_expiries(
    conn: sa.Connection, expiring: Sequence[tuple[uuid.UUID, str, str, dt.datetime]]
) -> None:
    """Refuse to expire a package of a protected class before its recorded definition
    keeps it: such an expiry was set under a definition changed behind the log.

    ``expiring`` holds ``(package_id, reference, class name, expires_at)`` items.
    """
    protected = {n: d for n, d in recorded_definitions(conn).items() if d["protected"]}
    suspects = [item for item in expiring if item[2] in protected]
    if not suspects:
        return
    p = artifact_packages
    rows = conn.execute(
        sa.select(p.c.package_id, p.c.created_at).where(
            p.c.package_id.in_([item[0] for item in suspects])
        )
    )
    created = {row.package_id: row.created_at for row in rows}
    for package_id, reference, name, expires_at in suspects:
        seconds = protected[name]["default_duration_seconds"]
        keep = None if seconds is None else created[package_id] + dt.timedelta(seconds=seconds)
        if keep is None or expires_at < keep:
            raise IntegrityError(
                f"package {reference} of protected retention class {name!r} is due at "
                f"{expires_at.isoformat()}, but the class's recorded definition keeps it "
                f"{'forever' if keep is None else 'until ' + keep.isoformat()}; its expiry was "
                "set under a changed definition, refusing to sweep"
            )
