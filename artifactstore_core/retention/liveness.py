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
from artifactstore_core.domain.names import ATTESTATION_KIND
from artifactstore_core.domain.retention import (
    KeepRule,
    is_live,
    keeping_rule,
    survives_sweep,
    tiers_holding,
)
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
        ev.PackageAttested,
        ev.KeepRuleSet,
        ev.KeepRuleRemoved,
    )
)


@dataclass
class _PackageState:
    name: str
    version: int
    retention_class: str
    expires_at: dt.datetime | None
    expired: bool = False
    holds: set[str] = field(default_factory=set)
    tier: str = "hot"
    restore_status: str | None = None
    #: The keep rule that keeps it, as of the last ``LogLiveness.kept`` call.
    rule: KeepRule | None = None
    #: For an attestation: the package it attests (it is kept exactly as long).
    subject: str | None = None

    @property
    def reference(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def live(self) -> bool:
        return is_live("expired" if self.expired else "active", bool(self.holds))

    def describe(self, package_id: str) -> str:
        if self.holds:
            state = f"on hold ({', '.join(sorted(self.holds))})"
        elif self.rule is not None and not self.expired:
            state = f"kept by keep rule {self.rule.selector!r}"
        else:
            state = f"active until {self.expires_at.isoformat() if self.expires_at else 'never'}"
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
        # Versions of the names of tracked packages: keep rules count the newer live ones.
        self._versions: dict[str, list[_PackageState]] = {}
        self._rules: dict[str, KeepRule] = {}
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
            # Every attestation is tracked: one made after the plan expires with its subject.
            attestation = event.kind == ATTESTATION_KIND
            if (
                used
                or attestation
                or event.package_id in self._package_ids
                or event.name in self._versions
            ):
                added = _PackageState(
                    event.name, event.version, event.retention_class,
                    parse_time(event.expires_at),
                )  # fmt: skip
                self._states[event.package_id] = added
                self._versions.setdefault(event.name, []).append(added)
                for address in used:
                    self._users.setdefault(address, []).append(event.package_id)
            return
        if isinstance(event, ev.PackageAttested):
            linked = self._states.get(event.attestation_id)
            if linked is not None:
                linked.subject = event.package_id
            return
        if isinstance(event, ev.KeepRuleSet):
            self._rules[event.selector] = KeepRule.parse(event.selector, event.keep_latest)
            return
        if isinstance(event, ev.KeepRuleRemoved):
            self._rules.pop(event.selector, None)
            return
        state = self._states.get(event.subject_id)
        if state is None:
            return
        if isinstance(event, ev.RetentionChanged):
            state.expires_at = parse_time(event.expires_at)
            state.retention_class = event.retention_class
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
        return state.describe(package_id) if self._kept(state, now) else None

    def _kept(self, state: _PackageState, now: dt.datetime) -> bool:
        """Whether a sweep at ``now`` keeps the package's bytes, by the log (an attestation:
        while held, or while active and its subject is kept; an untracked subject is in no
        plan, so it is not expiring)."""
        if state.subject is not None:
            subject = self._states.get(state.subject)
            kept = subject is None or self._kept(subject, now)
            return bool(state.holds) or (not state.expired and kept)
        newer_live = sum(
            1
            for other in self._versions[state.name]
            if other.version > state.version and other.live
        )
        state.rule = keeping_rule(
            list(self._rules.values()), state.name, state.retention_class, newer_live
        )
        status = "expired" if state.expired else "active"
        return survives_sweep(
            status, bool(state.holds), state.expires_at, now, state.rule is not None
        )

    def keeps_blob(self, address: str, tier: str, now: dt.datetime) -> str | None:
        """Why the log keeps the copy of blob ``address`` in ``tier`` at ``now`` (``None``:
        no live package needs that copy)."""
        for package_id in self._users.get(address, ()):
            state = self._states[package_id]
            if self._kept(state, now) and tier in tiers_holding(state.tier, state.restore_status):
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
