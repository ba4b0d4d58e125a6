"""Domain events: frozen dataclasses with past-tense names and a schema version.

The payload of an event is its fields as plain values (text, numbers, lists, maps);
identifiers and timestamps are text. The envelope (time, actor, sequence) lives in SQL.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

JsonObject = dict[str, Any]


_FIELDS: dict[type, tuple[tuple[str, ...], frozenset[str]]] = {}


def _fields(cls: type) -> tuple[tuple[str, ...], frozenset[str]]:
    """A dataclass's field names, in order and as a set (cached: decoding is a hot path)."""
    known = _FIELDS.get(cls)
    if known is None:
        order = tuple(f.name for f in dataclasses.fields(cls))
        known = _FIELDS[cls] = (order, frozenset(order))
    return known


def _field_order(cls: type) -> tuple[str, ...]:
    return _fields(cls)[0]


def _field_names(cls: type) -> frozenset[str]:
    return _fields(cls)[1]


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of all events; subclasses set ``event_type``, ``subject_kind``, ``version``."""

    event_type: ClassVar[str]
    subject_kind: ClassVar[str]
    schema_version: ClassVar[int] = 1

    @property
    def subject_id(self) -> str:
        raise NotImplementedError

    def to_payload(self) -> JsonObject:
        return {name: getattr(self, name) for name in _field_order(type(self))}

    @classmethod
    def from_payload(cls, payload: JsonObject) -> Event:
        names = _field_names(cls)
        if names.issuperset(payload):
            return cls(**payload)
        return cls(**{k: v for k, v in payload.items() if k in names})


@dataclass(frozen=True, kw_only=True)
class _PackageEvent(Event):
    subject_kind: ClassVar[str] = "package"
    package_id: str

    @property
    def subject_id(self) -> str:
        return self.package_id


@dataclass(frozen=True, kw_only=True)
class PackageRegistered(_PackageEvent):
    """A new immutable package version was registered."""

    event_type: ClassVar[str] = "PackageRegistered"
    name: str
    version: int
    kind: str
    content_address: str
    digest_sha256: str
    size: int
    files: list[JsonObject]
    metadata: JsonObject
    provenance: JsonObject
    retention_class: str
    expires_at: str | None


@dataclass(frozen=True, kw_only=True)
class TagMoved(_PackageEvent):
    """A tag of a package name now points at ``package_id``."""

    event_type: ClassVar[str] = "TagMoved"
    name: str
    tag: str
    previous_package_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class PackageRetrieved(_PackageEvent):
    """A package (or one of its files) was read."""

    event_type: ClassVar[str] = "PackageRetrieved"
    purpose: str | None = None
    run_id: str | None = None
    path: str | None = None


@dataclass(frozen=True, kw_only=True)
class RetentionChanged(_PackageEvent):
    """A package's retention class or expiry changed."""

    event_type: ClassVar[str] = "RetentionChanged"
    retention_class: str
    expires_at: str | None
    previous_class: str
    previous_expires_at: str | None
    override: bool = False
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class HoldPlaced(_PackageEvent):
    """A legal or operational hold now stops expiry and purge of the package."""

    event_type: ClassVar[str] = "HoldPlaced"
    hold_id: str
    hold_kind: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class HoldReleased(_PackageEvent):
    """A hold was released; ``holds_remaining`` are still standing."""

    event_type: ClassVar[str] = "HoldReleased"
    hold_id: str
    reason: str | None = None
    holds_remaining: int = 0


@dataclass(frozen=True, kw_only=True)
class PackageExpired(_PackageEvent):
    """The package reached its expiry; its manifest stays as a tombstone."""

    event_type: ClassVar[str] = "PackageExpired"
    expires_at: str | None


@dataclass(frozen=True, kw_only=True)
class PackageTierChanged(_PackageEvent):
    """The package's bytes now live in ``tier``; ``restore_status`` follows restores."""

    event_type: ClassVar[str] = "PackageTierChanged"
    tier: str
    restore_status: str | None = None


@dataclass(frozen=True, kw_only=True)
class _BlobEvent(Event):
    subject_kind: ClassVar[str] = "blob"
    content_address: str
    backend: str

    @property
    def subject_id(self) -> str:
        return self.content_address


@dataclass(frozen=True, kw_only=True)
class BlobStored(_BlobEvent):
    """A blob's bytes were stored (and verified) in ``backend`` (a tier name)."""

    event_type: ClassVar[str] = "BlobStored"
    digest_sha256: str
    size: int
    uri: str


@dataclass(frozen=True, kw_only=True)
class BlobPurged(_BlobEvent):
    """A blob's bytes were deleted from ``backend``."""

    event_type: ClassVar[str] = "BlobPurged"
    reason: str


@dataclass(frozen=True, kw_only=True)
class MetadataSchemaRegistered(Event):
    """Metadata of ``kind`` must now satisfy ``json_schema``."""

    event_type: ClassVar[str] = "MetadataSchemaRegistered"
    subject_kind: ClassVar[str] = "schema"
    kind: str
    json_schema: JsonObject = field(default_factory=dict)

    @property
    def subject_id(self) -> str:
        return self.kind


@dataclass(frozen=True, kw_only=True)
class RetentionClassDefined(Event):
    """Retention class ``name`` has (from now on) this definition."""

    event_type: ClassVar[str] = "RetentionClassDefined"
    subject_kind: ClassVar[str] = "retention_class"
    name: str
    description: str
    default_duration_seconds: int | None
    protected: bool
    transitions: list[JsonObject] | None = None

    @property
    def subject_id(self) -> str:
        return self.name


EVENT_TYPES: dict[str, type[Event]] = {
    cls.event_type: cls
    for cls in (
        PackageRegistered,
        TagMoved,
        PackageRetrieved,
        RetentionChanged,
        HoldPlaced,
        HoldReleased,
        PackageExpired,
        PackageTierChanged,
        BlobStored,
        BlobPurged,
        MetadataSchemaRegistered,
        RetentionClassDefined,
    )
}
