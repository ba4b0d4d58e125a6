"""Domain events: frozen dataclasses with past-tense names and a schema version.

The payload of an event is its fields as plain values (text, numbers, lists, maps);
identifiers and timestamps are text. The envelope (time, actor, sequence) lives in SQL.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
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


class MalformedPayloadError(ValueError):
    """A decoded payload does not have the fields and types of its event class."""


class _Absent:
    """Stands for a field missing from a payload (allowed where the field has a default)."""


_ABSENT = _Absent()


@dataclass(frozen=True, slots=True)
class _Checks:
    required: frozenset[str]
    types: tuple[tuple[str, frozenset[type]], ...]
    ints: tuple[str, ...]
    lists: tuple[tuple[str, type], ...]
    hints: dict[str, str]
    passes: Callable[[JsonObject], bool]
    """All of the above in one generated expression: the fast path of a valid payload."""


def _compile(
    types: tuple[tuple[str, frozenset[type]], ...],
    ints: tuple[str, ...],
    lists: tuple[tuple[str, type], ...],
) -> Callable[[JsonObject], bool]:
    """One boolean expression over a payload's fields (generated like dataclass code)."""
    names: dict[str, Any] = {"_ABSENT": _ABSENT, "INT_MIN": INT_MIN, "INT_MAX": INT_MAX}
    terms = []
    for index, (name, allowed) in enumerate(types):
        names[f"_t{index}"] = allowed
        terms.append(f"type(get({name!r}, _ABSENT)) in _t{index}")
    terms += [f"(type(get({n!r})) is not int or INT_MIN <= get({n!r}) <= INT_MAX)" for n in ints]
    for index, (name, item) in enumerate(lists):
        names[f"_i{index}"] = item
        terms.append(f"all(type(i) is _i{index} for i in get({name!r}) or ())")
    source = (
        f"def passes(payload):\n    get = payload.get\n    return {' and '.join(terms) or 'True'}"
    )
    exec(source, names)  # trusted: built from the event classes' own annotations
    function: Callable[[JsonObject], bool] = names["passes"]
    return function


_CHECKS: dict[type, _Checks] = {}
_FILE_ENTRY = {"path": str, "content_address": str, "digest_sha256": str, "size": int}


def _types(hint: Any) -> tuple[frozenset[type], type | None]:
    """The types a decoded value of ``hint`` may have, and its list items' type."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        allowed = [_types(arg) for arg in typing.get_args(hint)]
        items = next((item for _, item in allowed if item is not None), None)
        return frozenset().union(*(kinds for kinds, _ in allowed)), items
    origin = typing.get_origin(hint) or hint
    if origin is list:
        item = typing.get_args(hint)[0]
        return frozenset({list}), typing.get_origin(item) or item
    return frozenset({origin}), None


def _checks(cls: type) -> _Checks:
    """The type checks of an event class's fields (built once: decoding is a hot path)."""
    known = _CHECKS.get(cls)
    if known is None:
        hints = typing.get_type_hints(cls)
        fields = dataclasses.fields(cls)
        required = {
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        allowed = {f.name: _types(hints[f.name]) for f in fields}
        types_ = tuple(
            (name, kinds if name in required else kinds | {_Absent})
            for name, (kinds, _) in allowed.items()
        )
        ints = tuple(name for name, (kinds, _) in allowed.items() if int in kinds)
        lists = tuple((name, item) for name, (_, item) in allowed.items() if item is not None)
        known = _CHECKS[cls] = _Checks(
            required=frozenset(required),
            types=types_,
            ints=ints,
            lists=lists,
            hints={f.name: str(f.type) for f in fields},
            passes=_compile(types_, ints, lists),
        )
    return known


def _file_entry_passes(entry: JsonObject) -> bool:
    return (
        type(entry.get("path")) is str
        and type(entry.get("content_address")) is str
        and type(entry.get("digest_sha256")) is str
        and type(size := entry.get("size")) is int
        and INT_MIN <= size <= INT_MAX
    )


def _int64(value: Any) -> bool:
    return type(value) is not int or INT_MIN <= value <= INT_MAX


def _check_payload(cls: type, payload: JsonObject) -> None:
    """Every field present (unless it has a default) and of its declared type; integers
    64-bit; file entries complete. Values are checked further where they are used."""
    checks = _checks(cls)
    files = payload.get("files")
    if checks.passes(payload) and (files is None or all(map(_file_entry_passes, files))):
        return
    if not checks.required <= payload.keys():
        missing = sorted(checks.required - payload.keys())
        raise MalformedPayloadError(f"field {missing[0]!r} is missing")
    get = payload.get
    bad = [name for name, allowed in checks.types if type(get(name, _ABSENT)) not in allowed]
    bad += [name for name in checks.ints if not _int64(get(name))]
    bad += [
        name for name, item in checks.lists if any(type(i) is not item for i in get(name) or ())
    ]
    if bad:
        value = payload[bad[0]]
        raise MalformedPayloadError(
            f"field {bad[0]!r} is {type(value).__name__} {value!r:.60}, "
            f"expected {checks.hints[bad[0]]}"
        )
    for index, entry in enumerate(payload.get("files") or ()):
        for key, kind in _FILE_ENTRY.items():
            if type(entry.get(key)) is not kind or not _int64(entry.get(key)):
                raise MalformedPayloadError(
                    f"files[{index}].{key} is {entry.get(key)!r:.60}, expected {kind.__name__}"
                )


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
    #: The caller's key for a request it may retry: a retry returns this package.
    idempotency_key: str | None = None


@dataclass(frozen=True, kw_only=True)
class TagMoved(_PackageEvent):
    """A tag of a package name now points at ``package_id``."""

    event_type: ClassVar[str] = "TagMoved"
    name: str
    tag: str
    previous_package_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class TagRemoved(_PackageEvent):
    """Tag ``tag`` of a package name, which pointed at ``package_id``, no longer exists."""

    event_type: ClassVar[str] = "TagRemoved"
    name: str
    tag: str


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
class PackageAttested(_PackageEvent):
    """Package ``attestation_id`` (kind ``attestation``, registered in the same
    transaction) attests ``package_id``: it is listed, verified and retained with it."""

    event_type: ClassVar[str] = "PackageAttested"
    attestation_id: str
    predicate_type: str
    #: The ids of the keys that signed the attestation's envelope.
    key_ids: list[str] = field(default_factory=list)


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


@dataclass(frozen=True, kw_only=True)
class _KeepRuleEvent(Event):
    subject_kind: ClassVar[str] = "keep_rule"
    selector: str

    @property
    def subject_id(self) -> str:
        return self.selector


@dataclass(frozen=True, kw_only=True)
class KeepRuleSet(_KeepRuleEvent):
    """From now on, the newest ``keep_latest`` live versions of each name ``selector``
    matches are kept whatever their expiry (``domain.retention.KeepRule``)."""

    event_type: ClassVar[str] = "KeepRuleSet"
    keep_latest: int
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class KeepRuleRemoved(_KeepRuleEvent):
    """The keep rule ``selector`` no longer applies."""

    event_type: ClassVar[str] = "KeepRuleRemoved"
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class _TokenEvent(Event):
    subject_kind: ClassVar[str] = "token"
    token_id: str

    @property
    def subject_id(self) -> str:
        return self.token_id


@dataclass(frozen=True, kw_only=True)
class TokenIssued(_TokenEvent):
    """An access token was issued to ``actor`` (the envelope's actor issued it).

    Only the SHA-256 of its secret is recorded; the secret itself is never stored.
    """

    event_type: ClassVar[str] = "TokenIssued"
    secret_sha256: str
    actor: str
    scopes: list[str]
    expires_at: str
    run_id: str | None = None
    parent_id: str | None = None
    description: str | None = None


@dataclass(frozen=True, kw_only=True)
class TokenRevoked(_TokenEvent):
    """An access token was revoked: it no longer authenticates, from now on."""

    event_type: ClassVar[str] = "TokenRevoked"


EVENT_TYPES: dict[str, type[Event]] = {
    cls.event_type: cls
    for cls in (
        PackageRegistered,
        TagMoved,
        TagRemoved,
        PackageRetrieved,
        RetentionChanged,
        HoldPlaced,
        HoldReleased,
        PackageExpired,
        PackageTierChanged,
        PackageAttested,
        BlobStored,
        BlobPurged,
        MetadataSchemaRegistered,
        RetentionClassDefined,
        KeepRuleSet,
        KeepRuleRemoved,
        TokenIssued,
        TokenRevoked,
    )
}
