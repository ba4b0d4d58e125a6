"""One projector per event type: a pure function from a recorded event to row operations.

Row values come only from the event and its envelope, so replaying the log always
gives the same rows as the live, incremental path.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from artifactstore_core.domain import events as ev
from artifactstore_core.domain.retention import KeepRule
from artifactstore_core.eventlog import RecordedEvent
from artifactstore_core.projections.ops import Delete, Insert, Op, Update, Upsert

Projector = Callable[[RecordedEvent, ev.Event], list[Op]]
_PROJECTORS: dict[type[ev.Event], Projector] = {}


def _projector(event_class: type[ev.Event]) -> Callable[[Projector], Projector]:
    def register(function: Projector) -> Projector:
        _PROJECTORS[event_class] = function
        return function

    return register


def project(recorded: RecordedEvent) -> list[Op]:
    """The row operations for one recorded event (events with no view yield none)."""
    projector = _PROJECTORS.get(type(recorded.event))
    return projector(recorded, recorded.event) if projector else []


def parse_time(text: str | None) -> dt.datetime | None:
    """An ISO timestamp from a payload, aware and in UTC."""
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC) if text else None


def _digest_columns(content_address: str, sha256: str) -> dict[str, str]:
    algorithm, _, primary = content_address.partition(":")
    return {
        "digest_algorithm": algorithm,
        "digest_primary": primary,
        "digest_sha256": sha256,
        "content_address": content_address,
    }


def run_id_of(provenance: Mapping[str, Any]) -> str | None:
    """The ``run_id`` column of a registration's provenance: its run id if that is text."""
    run_id = provenance.get("run_id")
    return run_id if isinstance(run_id, str) else None


@_projector(ev.PackageRegistered)
def _registered(rec: RecordedEvent, event: ev.Event) -> list[Op]:
    assert isinstance(event, ev.PackageRegistered)
    package_id = uuid.UUID(event.package_id)
    ops: list[Op] = [
        Insert(
            "artifact_packages",
            {
                "package_id": package_id,
                "name": event.name,
                "version": event.version,
                "kind": event.kind,
                **_digest_columns(event.content_address, event.digest_sha256),
                "size": event.size,
                "file_count": len(event.files),
                "metadata": event.metadata,
                "provenance": event.provenance,
                "actor": rec.actor,
                "created_at": rec.created_at,
                "event_sequence": rec.sequence,
                "idempotency_key": event.idempotency_key,
                "run_id": run_id_of(event.provenance),
            },
        )
    ]
    ops.extend(
        Insert(
            "artifact_files",
            {
                "package_id": package_id,
                "path": entry["path"],
                "size": entry["size"],
                **_digest_columns(entry["content_address"], entry["digest_sha256"]),
            },
        )
        for entry in event.files
    )
    ops.extend(
        Insert("package_inputs", {"package_id": package_id, "input_package_id": uuid.UUID(i)})
        for i in dict.fromkeys(event.provenance.get("inputs") or ())
    )
    ops.append(
        Insert(
            "retention_state",
            {
                "package_id": package_id,
                "name": event.name,
                "version": event.version,
                "retention_class": event.retention_class,
                "status": "active",
                "expires_at": parse_time(event.expires_at),
                "on_hold": False,
                "expired_at": None,
                "retrieval_tier": "hot",
                "restore_status": None,
                "updated_at": rec.created_at,
            },
        )
    )
    ops.append(_tag_row(event.name, "latest", package_id, rec))
    return ops


def _tag_row(name: str, tag: str, package_id: uuid.UUID, rec: RecordedEvent) -> Upsert:
    return Upsert(
        "package_tags",
        {
            "name": name,
            "tag": tag,
            "package_id": package_id,
            "moved_at": rec.created_at,
            "actor": rec.actor,
        },
    )


@_projector(ev.TagMoved)
def _tag_moved(rec: RecordedEvent, event: ev.Event) -> list[Op]:
    assert isinstance(event, ev.TagMoved)
    return [_tag_row(event.name, event.tag, uuid.UUID(event.package_id), rec)]


@_projector(ev.TagRemoved)
def _tag_removed(_rec: RecordedEvent, event: ev.Event) -> list[Op]:
    assert isinstance(event, ev.TagRemoved)
    return [Delete("package_tags", {"name": event.name, "tag": event.tag})]


def _state(package_id: str, rec: RecordedEvent, **values: object) -> Update:
    return Update(
        "retention_state",
        {"package_id": uuid.UUID(package_id)},
        {**values, "updated_at": rec.created_at},
    )


@_projector(ev.RetentionChanged)
def _retention_changed(rec: RecordedEvent, event: ev.Event) -> list[Op]:
    assert isinstance(event, ev.RetentionChanged)
    return [
        _state(
            event.package_id,
            rec,
            retention_class=event.retention_class,
            expires_at=parse_time(event.expires_at),
        )
    ]


@_projector(ev.HoldPlaced)
def _hold_placed(rec: RecordedEvent, event: ev.Event) -> list[Op]:
    assert isinstance(event, ev.HoldPlaced)
    return [
        Insert(
            "retention_holds",
            {
                "hold_id": uuid.UUID(event.hold_id),
                "package_id": uuid.UUID(event.package_id),
                "hold_kind": event.hold_kind,
                "reason": event.reason,
                "actor": rec.actor,
                "placed_at": rec.created_at,
            },
        ),
        _state(event.package_id, rec, on_hold=True),
    ]


@_projector(ev.HoldReleased)
def _hold_released(rec: RecordedEvent, event: ev.Event) -> list[Op]:
    assert isinstance(event, ev.HoldReleased)
    return [
        Delete("retention_holds", {"hold_id": uuid.UUID(event.hold_id)}),
        _state(event.package_id, rec, on_hold=event.holds_remaining > 0),
    ]


@_projector(ev.PackageExpired)
def _expired(rec: RecordedEvent, event: ev.Event) -> list[Op]:
    assert isinstance(event, ev.PackageExpired)
    return [_state(event.package_id, rec, status="expired", expired_at=rec.created_at)]


@_projector(ev.PackageTierChanged)
def _tier_changed(rec: RecordedEvent, event: ev.Event) -> list[Op]:
    assert isinstance(event, ev.PackageTierChanged)
    return [
        _state(
            event.package_id, rec, retrieval_tier=event.tier, restore_status=event.restore_status
        )
    ]


@_projector(ev.PackageAttested)
def _attested(rec: RecordedEvent, event: ev.Event) -> list[Op]:
    assert isinstance(event, ev.PackageAttested)
    return [
        Insert(
            "package_attestations",
            {
                "attestation_id": uuid.UUID(event.attestation_id),
                "subject_id": uuid.UUID(event.package_id),
                "predicate_type": event.predicate_type,
                "attested_at": rec.created_at,
                "event_sequence": rec.sequence,
            },
        )
    ]


@_projector(ev.BlobStored)
def _blob_stored(rec: RecordedEvent, event: ev.Event) -> list[Op]:
    assert isinstance(event, ev.BlobStored)
    return [
        Upsert(
            "storage_locations",
            {
                **_digest_columns(event.content_address, event.digest_sha256),
                "backend": event.backend,
                "size": event.size,
                "uri": event.uri,
                "stored_at": rec.created_at,
            },
        )
    ]


@_projector(ev.BlobPurged)
def _blob_purged(rec: RecordedEvent, event: ev.Event) -> list[Op]:
    assert isinstance(event, ev.BlobPurged)
    return [
        Delete(
            "storage_locations",
            {"content_address": event.content_address, "backend": event.backend},
        )
    ]


@_projector(ev.MetadataSchemaRegistered)
def _schema_registered(rec: RecordedEvent, event: ev.Event) -> list[Op]:
    assert isinstance(event, ev.MetadataSchemaRegistered)
    return [
        Upsert(
            "metadata_schemas",
            {
                "kind": event.kind,
                "json_schema": event.json_schema,
                "registered_by": rec.actor,
                "registered_at": rec.created_at,
                "event_sequence": rec.sequence,
            },
        )
    ]


@_projector(ev.RetentionClassDefined)
def _class_defined(rec: RecordedEvent, event: ev.Event) -> list[Op]:
    assert isinstance(event, ev.RetentionClassDefined)
    return [
        Upsert(
            "retention_classes",
            {
                "name": event.name,
                "description": event.description,
                "default_duration_seconds": event.default_duration_seconds,
                "protected": event.protected,
                "transitions": event.transitions,
                "created_at": rec.created_at,
            },
        )
    ]


@_projector(ev.KeepRuleSet)
def _keep_rule_set(rec: RecordedEvent, event: ev.Event) -> list[Op]:
    assert isinstance(event, ev.KeepRuleSet)
    rule = KeepRule.parse(event.selector, event.keep_latest)
    return [
        Upsert(
            "retention_keep_rules",
            {
                "selector": rule.selector,
                "scope": rule.scope,
                "pattern": rule.pattern,
                "keep_latest": rule.keep_latest,
                "set_by": rec.actor,
                "set_at": rec.created_at,
                "event_sequence": rec.sequence,
            },
        )
    ]


@_projector(ev.KeepRuleRemoved)
def _keep_rule_removed(rec: RecordedEvent, event: ev.Event) -> list[Op]:
    assert isinstance(event, ev.KeepRuleRemoved)
    return [Delete("retention_keep_rules", {"selector": event.selector})]


@_projector(ev.TokenIssued)
def _token_issued(rec: RecordedEvent, event: ev.Event) -> list[Op]:
    assert isinstance(event, ev.TokenIssued)
    return [
        Insert(
            "access_tokens",
            {
                "token_id": event.token_id,
                "secret_sha256": event.secret_sha256,
                "actor": event.actor,
                "scopes": event.scopes,
                "run_id": event.run_id,
                "parent_id": event.parent_id,
                "description": event.description,
                "issued_by": rec.actor,
                "issued_at": rec.created_at,
                "expires_at": parse_time(event.expires_at),
                "revoked_at": None,
                "event_sequence": rec.sequence,
            },
        )
    ]


@_projector(ev.TokenRevoked)
def _token_revoked(rec: RecordedEvent, event: ev.Event) -> list[Op]:
    assert isinstance(event, ev.TokenRevoked)
    return [Update("access_tokens", {"token_id": event.token_id}, {"revoked_at": rec.created_at})]
