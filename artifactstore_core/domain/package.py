"""The read model of a package, as the registry returns it."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from artifactstore_core.domain.manifest import FileEntry, Provenance
from artifactstore_core.errors import (
    ArchivedError,
    InvalidInputError,
    NotFoundError,
    PackageExpiredError,
)


def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 text of an aware datetime, or ``None``."""
    return value.isoformat() if value is not None else None


def parse_iso(text: str | None) -> dt.datetime | None:
    """The datetime of ``iso``'s text, or ``None`` (the inverse of ``iso``)."""
    return dt.datetime.fromisoformat(text) if text is not None else None


@dataclass(frozen=True)
class Hold:
    """A hold standing on a package."""

    hold_id: uuid.UUID
    kind: str
    reason: str
    actor: str
    placed_at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "hold_id": str(self.hold_id),
            "kind": self.kind,
            "reason": self.reason,
            "actor": self.actor,
            "placed_at": iso(self.placed_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Hold:
        """The hold ``to_dict`` describes."""
        return cls(
            hold_id=uuid.UUID(data["hold_id"]),
            kind=data["kind"],
            reason=data["reason"],
            actor=data["actor"],
            placed_at=dt.datetime.fromisoformat(data["placed_at"]),
        )


@dataclass(frozen=True)
class Package:
    """An immutable package version with its current retention state and tags."""

    id: uuid.UUID
    name: str
    version: int
    kind: str
    content_address: str
    digest_sha256: str
    size: int
    created_at: dt.datetime
    actor: str
    metadata: dict[str, Any]
    provenance: Provenance
    files: tuple[FileEntry, ...]
    retention_class: str
    expires_at: dt.datetime | None
    status: str = "active"
    expired_at: dt.datetime | None = None
    on_hold: bool = False
    retrieval_tier: str = "hot"
    restore_status: str | None = None
    tags: tuple[str, ...] = ()
    holds: tuple[Hold, ...] = field(default=())
    #: References (``name@version``) of the attestations of this package, oldest first.
    attestations: tuple[str, ...] = ()
    #: For an attestation (kind ``attestation``): the reference of the package it attests.
    attests: str | None = None

    @property
    def reference(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    def file(self, path: str | None = None) -> FileEntry:
        """The entry for ``path``; with ``None``, the only file of a one-file package."""
        if path is None:
            if len(self.files) != 1:
                raise InvalidInputError(
                    f"package {self.reference} has {len(self.files)} files; name one of: "
                    + ", ".join(e.path for e in self.files[:10])
                )
            return self.files[0]
        for entry in self.files:
            if entry.path == path:
                return entry
        raise NotFoundError(f"package {self.reference} has no file {path!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``show --json`` and ``put --json``."""
        return {
            "id": str(self.id),
            "name": self.name,
            "version": self.version,
            "reference": self.reference,
            "kind": self.kind,
            "content_address": self.content_address,
            "digest_sha256": self.digest_sha256,
            "size": self.size,
            "created_at": iso(self.created_at),
            "actor": self.actor,
            "retention_class": self.retention_class,
            "expires_at": iso(self.expires_at),
            "status": self.status,
            "expired_at": iso(self.expired_at),
            "on_hold": self.on_hold,
            "holds": [hold.to_dict() for hold in self.holds],
            "retrieval_tier": self.retrieval_tier,
            "restore_status": self.restore_status,
            "tags": list(self.tags),
            "attestations": list(self.attestations),
            "attests": self.attests,
            "metadata": self.metadata,
            "provenance": self.provenance.to_dict(),
            "files": [entry.to_dict() for entry in self.files],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Package:
        """The package ``to_dict`` describes (as a server answers it)."""
        return cls(
            id=uuid.UUID(data["id"]),
            name=data["name"],
            version=data["version"],
            kind=data["kind"],
            content_address=data["content_address"],
            digest_sha256=data["digest_sha256"],
            size=data["size"],
            created_at=dt.datetime.fromisoformat(data["created_at"]),
            actor=data["actor"],
            metadata=dict(data["metadata"]),
            provenance=Provenance.from_dict(data["provenance"]),
            files=tuple(FileEntry.from_dict(entry) for entry in data["files"]),
            retention_class=data["retention_class"],
            expires_at=parse_iso(data["expires_at"]),
            status=data["status"],
            expired_at=parse_iso(data["expired_at"]),
            on_hold=data["on_hold"],
            retrieval_tier=data["retrieval_tier"],
            restore_status=data["restore_status"],
            tags=tuple(data["tags"]),
            holds=tuple(Hold.from_dict(hold) for hold in data["holds"]),
            attestations=tuple(data.get("attestations", ())),
            attests=data.get("attests"),
        )


def check_readable(package: Package) -> None:
    """``PackageExpiredError`` or ``ArchivedError`` unless the package's bytes can be read."""
    if package.status == "expired":
        expired = package.expires_at or package.expired_at
        raise PackageExpiredError(
            f"package {package.reference} ({package.id}) of retention class "
            f"{package.retention_class!r} expired on "
            f"{expired.isoformat() if expired else 'an unknown date'}; its bytes may be gone "
            "(its manifest is still shown by `artifactstore show`)"
        )
    if package.retrieval_tier == "archive" and package.restore_status != "restored":
        raise ArchivedError(
            f"package {package.reference} is in the archive tier "
            f"(restore status: {package.restore_status or 'not requested'}); "
            f"restore it first with `artifactstore restore {package.reference}`"
        )
