"""Why a package is still kept, or when it will go."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from artifactstore_core import queries
from artifactstore_core.domain.package import Package, iso
from artifactstore_core.domain.retention import KeepRule
from artifactstore_core.retention import predicates as rules
from artifactstore_core.retention.keep import rule_keeping
from artifactstore_core.schema import artifact_files, artifact_packages, retention_state


@dataclass(frozen=True)
class Explanation:
    """The retention facts of one package and a one-line verdict."""

    package: Package
    now: dt.datetime
    verdict: str
    shared_blobs: int
    shared_bytes: int
    sharing_packages: tuple[str, ...]
    #: The selector of the keep rule that keeps the package as a current version, if any.
    kept_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        p = self.package
        return {
            "package_id": str(p.id),
            "reference": p.reference,
            "status": p.status,
            "retention_class": p.retention_class,
            "expires_at": iso(p.expires_at),
            "expired_at": iso(p.expired_at),
            "holds": [h.to_dict() for h in p.holds],
            "tier": p.retrieval_tier,
            "restore_status": p.restore_status,
            "shared_blobs": self.shared_blobs,
            "shared_bytes": self.shared_bytes,
            "sharing_packages": list(self.sharing_packages),
            "kept_by": self.kept_by,
            "attestations": list(p.attestations),
            "attests": p.attests,
            "verdict": self.verdict,
            "now": iso(self.now),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], package: Package) -> Explanation:
        """The explanation ``to_dict`` describes, of ``package`` (which it only names)."""
        return cls(
            package=package,
            now=dt.datetime.fromisoformat(data["now"]),
            verdict=data["verdict"],
            shared_blobs=data["shared_blobs"],
            shared_bytes=data["shared_bytes"],
            sharing_packages=tuple(data["sharing_packages"]),
            kept_by=data.get("kept_by"),
        )


def verdict(package: Package, now: dt.datetime, rule: KeepRule | None = None) -> str:
    """A sentence saying why the package is kept or when it goes (``rule``: the keep rule
    that keeps it as one of the current versions of its name)."""
    if package.holds:
        who = "; ".join(f"{h.kind} hold by {h.actor}: {h.reason}" for h in package.holds)
        return f"kept: {len(package.holds)} hold(s) stand ({who})"
    if package.status == "expired":
        return (
            f"expired on {iso(package.expires_at)} (swept {iso(package.expired_at)}); "
            "its bytes go unless another live package shares them"
        )
    if rule is not None:
        which = (
            "the current version"
            if rule.keep_latest == 1
            else f"one of the {rule.keep_latest} current versions"
        )
        return (
            f"kept: {which} of {package.name!r} (keep rule {rule.selector!r}); its expiry "
            f"({iso(package.expires_at) or 'never'}) applies once {rule.keep_latest} newer "
            "version(s) exist"
        )
    if package.expires_at is None:
        return f"kept forever: class {package.retention_class!r} never expires"
    if package.expires_at <= now:
        return f"due: expired on {iso(package.expires_at)}, goes at the next sweep"
    return f"kept until {iso(package.expires_at)} (class {package.retention_class!r})"


def explain(conn: sa.Connection, package: Package, now: dt.datetime) -> Explanation:
    """Facts about ``package`` at ``now``, including blobs other live packages share
    (ADR-0003 "shared": those stay when this package goes). An attestation's verdict is its
    subject's: it is retained exactly as long."""
    if package.attests is not None:
        subject = explain(conn, queries.load_package(conn, package.attests), now)
        own = explain_one(conn, package, now)
        return replace(
            own, verdict=f"retained with {package.attests}, which it attests: {subject.verdict}"
        )
    found = explain_one(conn, package, now)
    if package.attestations:
        count = len(package.attestations)
        return replace(
            found, verdict=f"{found.verdict}; its {count} attestation(s) are retained with it"
        )
    return found


def explain_one(conn: sa.Connection, package: Package, now: dt.datetime) -> Explanation:
    """``explain`` of ``package`` by its own retention state."""
    f, s, p = artifact_files, retention_state, artifact_packages
    other = f.alias("other")
    rows = conn.execute(
        sa.select(other.c.content_address, other.c.size, p.c.name, p.c.version)
        .join(s, s.c.package_id == other.c.package_id)
        .join(p, p.c.package_id == other.c.package_id)
        .where(other.c.package_id != package.id)
        .where(other.c.content_address.in_([e.blob.content_address for e in package.files]))
        .where(rules.live(s))
        .order_by(p.c.name, p.c.version)
    ).all()
    sizes = {r.content_address: r.size for r in rows}
    sharing = tuple(dict.fromkeys(f"{r.name}@{r.version}" for r in rows))
    rule = rule_keeping(conn, package) if package.status == "active" else None
    return Explanation(package, now, verdict(package, now, rule), len(sizes),
                       sum(sizes.values()), sharing, rule.selector if rule else None)  # fmt: skip
