"""What the event log itself says a sweep must keep: held packages and the blobs of live ones.

A sweep plans from the views. Before it expires a package or deletes a blob, it checks
the plan against state folded from the log, so that a view edited behind the log (a hold
row deleted, a file row removed, an expiry moved) can never cause a purge: the sweep
stops with an ``IntegrityError`` naming the package instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

from artifactstore_core.domain import events as ev
from artifactstore_core.domain.retention import survives_sweep, tiers_holding
from artifactstore_core.errors import IntegrityError
from artifactstore_core.eventlog import EventLog
from artifactstore_core.projections.projectors import parse_time

_EVENT_TYPES = tuple(
    cls.event_type
    for cls in (
        ev.PackageRegistered,
        ev.RetentionChanged,
        ev.HoldPlaced,
        ev.HoldReleased,
        ev.PackageExpired,
        ev.PackageTierChanged,
    )
)


@dataclass
class _PackageState:
    reference: str
    expires_at: dt.datetime | None
    expired: bool = False
    holds: set[str] = field(default_factory=set)
    tier: str = "hot"
    restore_status: str | None = None

    def kept(self, now: dt.datetime) -> bool:
        """Whether a sweep at ``now`` keeps the package's bytes, by the log."""
        status = "expired" if self.expired else "active"
        return survives_sweep(status, bool(self.holds), self.expires_at, now)

    def describe(self, package_id: str) -> str:
        state = (
            f"on hold ({', '.join(sorted(self.holds))})"
            if self.holds
            else f"active until {self.expires_at.isoformat() if self.expires_at else 'never'}"
        )
        return f"package {self.reference} ({package_id}) is {state} in the event log"


class LogLiveness:
    """Retention state of the packages a sweep touches, folded from the event log.

    Tracks the packages named in ``packages`` and every package that has a file among
    ``addresses``; ``catch_up`` reads the events appended since the last call.
    """

    def __init__(self, log: EventLog, packages: Iterable[str], addresses: Iterable[str]) -> None:
        self._log = log
        self._package_ids = set(packages)
        self._addresses = set(addresses)
        self._states: dict[str, _PackageState] = {}
        self._users: dict[str, list[str]] = {}
        self._sequence = 0

    def catch_up(self, conn: sa.Connection, *, until: int | None = None) -> None:
        """Fold the events appended since the last call (up to sequence ``until``)."""
        events = self._log.read(conn, since=self._sequence, until=until, event_types=_EVENT_TYPES)
        for item in events:
            self._sequence = item.sequence
            self._apply(item.event)
        if until is not None:
            self._sequence = max(self._sequence, until)

    def _apply(self, event: ev.Event) -> None:
        if isinstance(event, ev.PackageRegistered):
            used = {entry["content_address"] for entry in event.files} & self._addresses
            if used or event.package_id in self._package_ids:
                reference = f"{event.name}@{event.version}"
                self._states[event.package_id] = _PackageState(
                    reference, parse_time(event.expires_at)
                )
                for address in used:
                    self._users.setdefault(address, []).append(event.package_id)
            return
        state = self._states.get(event.subject_id)
        if state is None:
            return
        if isinstance(event, ev.RetentionChanged):
            state.expires_at = parse_time(event.expires_at)
        elif isinstance(event, ev.HoldPlaced):
            state.holds.add(event.hold_id)
        elif isinstance(event, ev.HoldReleased):
            state.holds.discard(event.hold_id)
        elif isinstance(event, ev.PackageExpired):
            state.expired = True
        elif isinstance(event, ev.PackageTierChanged):
            state.tier, state.restore_status = event.tier, event.restore_status

    def keeps_package(self, package_id: str, now: dt.datetime) -> str | None:
        """Why the log keeps ``package_id`` at ``now`` (``None``: it may expire)."""
        state = self._states.get(package_id)
        if state is None:
            return f"package {package_id} is not registered in the event log"
        return state.describe(package_id) if state.kept(now) else None

    def keeps_blob(self, address: str, tier: str, now: dt.datetime) -> str | None:
        """Why the log keeps the copy of blob ``address`` in ``tier`` at ``now`` (``None``:
        no live package needs that copy)."""
        for package_id in self._users.get(address, ()):
            state = self._states[package_id]
            if state.kept(now) and tier in tiers_holding(state.tier, state.restore_status):
                return f"{state.describe(package_id)} and needs blob {address} in tier {tier}"
        return None


def views_disagree(reasons: Iterable[str | None]) -> IntegrityError | None:
    """The error for a sweep step the views allow but the log forbids, if any."""
    found = [reason for reason in reasons if reason]
    if not found:
        return None
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return IntegrityError(
        f"the views disagree with the event log, so the sweep stopped before changing it: "
        f"{found[0]}{more}, yet the views let the sweep remove it; run "
        "`artifactstore views check` to see the difference and `views rebuild` to repair it"
    )
