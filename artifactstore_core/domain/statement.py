"""in-toto Statement v1 with an SLSA Provenance v1 predicate, for one package version.

Subjects are the package (its manifest's SHA-256, media type ``PACKAGE_MEDIA_TYPE``)
and then each of its files, by SHA-256 only: clients such as sigstore refuse a digest
algorithm they do not know, so the BLAKE3 digest, the size and the package id travel in
``annotations`` (``artifactstore_blake3``, ``artifactstore_size``,
``artifactstore_package_id``). ``resolvedDependencies`` are the input packages and, when
the code version is a git commit (40 or 64 hex digits), that commit. The bytes are
canonical JSON (sorted keys, no whitespace): the same package always gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from artifactstore_core.domain.manifest import FileEntry, canonical_json
from artifactstore_core.domain.package import Package
from artifactstore_core.errors import EvidenceError, InvalidInputError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PROVENANCE_TYPE = "https://slsa.dev/provenance/v1"
PACKAGE_MEDIA_TYPE = "application/vnd.artifactstore.package.v1+json"
#: ``buildType`` of a package a Dagster asset materialized (job, asset key, partition).
DAGSTER_ASSET_BUILD = "urn:artifactstore:buildtype:dagster-asset:v1"
#: ``buildType`` of any other package (its name and kind).
PACKAGE_BUILD = "urn:artifactstore:buildtype:package:v1"
_GIT_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def provenance_statement(
    package: Package,
    inputs: Sequence[Package],
    *,
    origin: str,
    builder_id: str,
    versions: Mapping[str, str],
) -> dict[str, Any]:
    """The statement of ``package`` built from ``inputs`` (its provenance's input
    packages, in that order), by ``builder_id`` at ``versions``; input URIs are
    ``artifactstore://<origin>/packages/<name>@<version>``."""
    recorded = set(input_ids(package))
    for item in inputs:
        if item.id not in recorded:
            raise InvalidInputError(
                f"package {item.reference} ({item.id}) is not an input of {package.reference}"
            )
    provenance = package.provenance
    dagster = _dagster_asset(provenance.attributes)
    code_version = (provenance.code_version or "").lower()
    git = code_version if _GIT_COMMIT.fullmatch(code_version) else None
    if dagster is not None:
        build_type = DAGSTER_ASSET_BUILD
        external = {
            "job": dagster.get("job_name"),
            "asset_key": "/".join(str(part) for part in dagster["asset_key"]),
            "partition_key": dagster.get("partition_key"),
            "kind": package.kind,
        }
    else:
        build_type, external = PACKAGE_BUILD, {"name": package.name, "kind": package.kind}
    internal = {
        "producer": provenance.producer,
        "dagster_run_id": dagster.get("run_id") if dagster is not None else None,
        "code_version": provenance.code_version if git is None else None,
    }
    dependencies = [_input_descriptor(item, origin) for item in inputs]
    if git is not None:
        dependencies.append({"name": "code", "digest": {"gitCommit": git}})
    builder: dict[str, Any] = {"id": builder_id}
    if versions:
        builder["version"] = dict(versions)
    metadata = {"invocationId": provenance.run_id, "finishedOn": timestamp(package.created_at)}
    return {
        "_type": STATEMENT_TYPE,
        "subject": [_package_subject(package), *_file_subjects(package)],
        "predicateType": PROVENANCE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": build_type,
                "externalParameters": _present(external),
                "internalParameters": _present(internal),
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": builder,
                "metadata": _present(metadata),
                "byproducts": [],
            },
        },
    }


def input_ids(package: Package) -> list[uuid.UUID]:
    """The ids of the input packages ``package``'s provenance records, once each, in order."""
    ids: dict[uuid.UUID, None] = {}
    for text in package.provenance.inputs:
        try:
            ids[uuid.UUID(text)] = None
        except ValueError:
            continue  # not a package id: nothing the registry can describe
    return list(ids)


def statement_bytes(statement: Mapping[str, Any]) -> bytes:
    """The canonical JSON of ``statement``: byte-identical for equal statements."""
    return canonical_json(statement)


def timestamp(value: dt.datetime) -> str:
    """``YYYY-MM-DDThh:mm:ssZ`` (UTC, whole seconds), as SLSA writes times."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _dagster_asset(attributes: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The Dagster facts (``attributes.dagster``) when they name an asset."""
    dagster = attributes.get("dagster")
    if isinstance(dagster, Mapping) and isinstance(dagster.get("asset_key"), list):
        return dagster
    return None


def _package_subject(package: Package) -> dict[str, Any]:
    return {
        "name": package.reference,
        "digest": {"sha256": package.digest_sha256},
        "mediaType": PACKAGE_MEDIA_TYPE,
        "annotations": {
            "artifactstore_blake3": _blake3_hex(package.content_address),
            "artifactstore_package_id": str(package.id),
        },
    }


def _file_subjects(package: Package) -> list[dict[str, Any]]:
    def subject(entry: FileEntry) -> dict[str, Any]:
        return {
            "name": f"{package.reference}/{entry.path}",
            "digest": {"sha256": entry.blob.sha256.hex},
            "annotations": {
                "artifactstore_blake3": entry.blob.blake3.hex,
                "artifactstore_size": entry.blob.size,
            },
        }

    return [subject(entry) for entry in sorted(package.files, key=lambda e: e.path)]


def _input_descriptor(item: Package, origin: str) -> dict[str, Any]:
    return {
        "name": item.reference,
        "uri": f"artifactstore://{origin}/packages/{item.reference}",
        "digest": {"sha256": item.digest_sha256},
        "annotations": {
            "artifactstore_blake3": _blake3_hex(item.content_address),
            "artifactstore_package_id": str(item.id),
        },
    }


def _blake3_hex(content_address: str) -> str:
    return content_address.removeprefix("blake3:")


# ---------------------------------------------------------------------------- reading back
@dataclass(frozen=True)
class StatementSubject:
    """A subject as a statement names it: ``sha256`` is its digest; ``blake3``,
    ``size`` and ``package_id`` come from its annotations (``None`` when absent)."""

    name: str
    sha256: str
    blake3: str | None = None
    size: int | None = None
    package_id: str | None = None


@dataclass(frozen=True)
class StatementSubjects:
    """The package subject of a statement and its file subjects by path."""

    package: StatementSubject
    files: dict[str, StatementSubject]


def parse_statement(payload: bytes) -> dict[str, Any]:
    """The statement ``payload`` holds; ``EvidenceError`` unless it is a JSON object of
    type in-toto Statement v1 with an SLSA Provenance v1 predicate."""
    try:
        statement = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvidenceError(f"the statement is not JSON: {exc}") from None
    if not isinstance(statement, dict):
        raise EvidenceError("the statement is not a JSON object")
    for key, wanted in (("_type", STATEMENT_TYPE), ("predicateType", PROVENANCE_TYPE)):
        if statement.get(key) != wanted:
            raise EvidenceError(
                f"the statement's {key} is {str(statement.get(key))[:80]!r}, not {wanted!r}"
            )
    return statement


def statement_subjects(statement: Mapping[str, Any]) -> StatementSubjects:
    """The package subject (the one of media type ``PACKAGE_MEDIA_TYPE``) and the file
    subjects (``<name>@<version>/<path>``) of a statement this module wrote;
    ``EvidenceError`` names the subject that is malformed or missing."""
    subjects = statement.get("subject")
    if not isinstance(subjects, list):
        raise EvidenceError("the statement has no subject list")
    packages = [
        s for s in subjects if isinstance(s, Mapping) and s.get("mediaType") == PACKAGE_MEDIA_TYPE
    ]
    if len(packages) != 1:
        raise EvidenceError(f"the statement names {len(packages)} package subjects, not 1")
    package = _subject(packages[0], 0)
    prefix = package.name + "/"
    files: dict[str, StatementSubject] = {}
    for index, item in enumerate(subjects):
        if item is packages[0]:
            continue
        subject = _subject(item, index)
        if not subject.name.startswith(prefix) or subject.name[len(prefix) :] in files:
            raise EvidenceError(
                f"subject {index} {subject.name[:120]!r} is not a distinct file of {package.name!r}"
            )
        files[subject.name[len(prefix) :]] = subject
    return StatementSubjects(package, files)


def _subject(item: Any, index: int) -> StatementSubject:
    if not isinstance(item, Mapping):
        raise EvidenceError(f"subject {index} is not a JSON object")
    name, digest = item.get("name"), item.get("digest")
    sha256 = digest.get("sha256") if isinstance(digest, Mapping) else None
    if not isinstance(name, str) or not isinstance(sha256, str):
        raise EvidenceError(f"subject {index} lacks a name or a sha256 digest")
    notes = item.get("annotations")
    notes = notes if isinstance(notes, Mapping) else {}
    blake3, size, package_id = (
        notes.get("artifactstore_blake3"),
        notes.get("artifactstore_size"),
        notes.get("artifactstore_package_id"),
    )
    if not (
        isinstance(blake3, str | None)
        and isinstance(package_id, str | None)
        and (size is None or (isinstance(size, int) and not isinstance(size, bool)))
    ):
        raise EvidenceError(f"subject {index} {name[:120]!r} has malformed annotations")
    return StatementSubject(name, sha256, blake3, size, package_id)
