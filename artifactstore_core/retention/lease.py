"""A lease in the ``leases`` table so that two sweeps never run at once."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import uuid
from collections.abc import Callable, Iterator

import sqlalchemy as sa

from artifactstore_core.errors import ConflictError
from artifactstore_core.ledger import Ledger
from artifactstore_core.schema import leases

DEFAULT_TTL = dt.timedelta(minutes=2)


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _is_dead_local_holder(holder: str) -> bool:
    """Whether ``holder`` names a process on this host that no longer runs."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Lease:
    """A held lease; ``renew()`` pushes its expiry forward while work goes on."""

    def __init__(
        self, engine: sa.Engine, name: str, holder: str, clock: Callable[[], dt.datetime]
    ) -> None:
        self.engine, self.name, self.holder, self._clock = engine, name, holder, clock

    def renew(self, ttl: dt.timedelta = DEFAULT_TTL) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                leases.update()
                .where(leases.c.name == self.name, leases.c.holder == self.holder)
                .values(expires_at=self._clock() + ttl)
            )


@contextlib.contextmanager
def hold_lease(ledger: Ledger, name: str, ttl: dt.timedelta = DEFAULT_TTL) -> Iterator[Lease]:
    """Take lease ``name`` or raise ``ConflictError`` naming the current holder.

    A lease whose time ran out, or whose holder process on this host is gone, is taken over.
    """
    holder, engine, clock = _holder(), ledger.engine, ledger.clock
    with ledger.locked() as conn:
        now = clock()
        row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
        if row is not None:
            if row.expires_at > now and not _is_dead_local_holder(row.holder):
                raise ConflictError(
                    f"another {name} is running (lease held by {row.holder} since "
                    f"{row.acquired_at.isoformat()}, until {row.expires_at.isoformat()})"
                )
            conn.execute(leases.delete().where(leases.c.name == name))
        conn.execute(
            leases.insert().values(name=name, holder=holder, acquired_at=now, expires_at=now + ttl)
        )
    try:
        yield Lease(engine, name, holder, clock)
    finally:
        with engine.begin() as conn:
            conn.execute(leases.delete().where(leases.c.name == name, leases.c.holder == holder))
