"""Domain events: frozen dataclasses with past-tense names and a schema version.

The payload of an event is its fields as plain values (text, numbers, lists, maps);
identifiers and timestamps are text. The envelope (time, actor, sequence) lives in SQL.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from artifactstore_core.domain.limits import INT_MAX, INT_MIN

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


Predicate = typing.Callable[[Any], bool]
_CHECKS: dict[type, tuple[tuple[str, Predicate, bool, str], ...]] = {}
_UUID_FIELDS = frozenset({"package_id", "hold_id", "previous_package_id"})
_TIME_FIELDS = frozenset({"expires_at", "previous_expires_at"})


class MalformedPayloadError(ValueError):
    """A decoded payload does not have the fields and types of its event class."""


def _is_int(value: Any) -> bool:
    return type(value) is int and INT_MIN <= value <= INT_MAX


def _predicate(hint: Any) -> Predicate:
    """A fast check that a decoded value has the type ``hint`` (built once per field)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return lambda _value: True
    if origin in (typing.Union, types.UnionType):
        options = [_predicate(arg) for arg in args]
        return lambda value: any(check(value) for check in options)
    if hint is type(None):
        return lambda value: value is None
    if hint is int:
        return _is_int
    if origin is list:
        item = _predicate(args[0])
        return lambda value: type(value) is list and all(map(item, value))
    if origin is dict:
        return lambda value: type(value) is dict and all(type(k) is str for k in value)
    return lambda value: type(value) is hint


def _checks(cls: type) -> tuple[tuple[str, Predicate, bool, str], ...]:
    """(field, predicate, required, type text) for each field of an event class."""
    known = _CHECKS.get(cls)
    if known is None:
        hints = typing.get_type_hints(cls)
        known = _CHECKS[cls] = tuple(
            (f.name, _predicate(hints[f.name]),
             f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
             str(f.type))
            for f in dataclasses.fields(cls)
        )  # fmt: skip
    return known


_FILE_ENTRY = {"path": str, "content_address": str, "digest_sha256": str, "size": int}
_FILE_CHECKS = {key: _predicate(kind) for key, kind in _FILE_ENTRY.items()}


def _check_payload(cls: type, payload: JsonObject) -> None:
    for name, check, required, expected in _checks(cls):
        if name not in payload:
            if required:
                raise MalformedPayloadError(f"field {name!r} is missing")
            continue
        value = payload[name]
        if not check(value):
            raise MalformedPayloadError(
                f"field {name!r} is {type(value).__name__} {value!r:.60}, expected {expected}"
            )
        try:
            if name in _UUID_FIELDS and value is not None:
                uuid.UUID(value)
            elif name in _TIME_FIELDS and value is not None:
                dt.datetime.fromisoformat(value).astimezone(dt.UTC)
        except (ValueError, OverflowError) as exc:
            raise MalformedPayloadError(f"field {name!r} is {value!r:.60}: {exc}") from None
    for index, entry in enumerate(payload.get("files") or ()):
        for key, check in _FILE_CHECKS.items():
            if not check(entry.get(key)):
                expected = _FILE_ENTRY[key].__name__
                raise MalformedPayloadError(
                    f"files[{index}].{key} is {entry.get(key)!r:.60}, expected {expected}"
                )
    inputs = (payload.get("provenance") or {}).get("inputs") or []
    try:
        for item in inputs:
            uuid.UUID(item)
    except (TypeError, ValueError, AttributeError):
        raise MalformedPayloadError(f"provenance.inputs is {inputs!r:.60}") from None


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
        """The event a decoded payload describes; ``MalformedPayloadError`` names the first
        field that is missing or of the wrong type (unknown fields are ignored)."""
        names = _field_names(cls)
        if not names.issuperset(payload):
            payload = {k: v for k, v in payload.items() if k in names}
        _check_payload(cls, payload)
        return cls(**payload)


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
    )
}
