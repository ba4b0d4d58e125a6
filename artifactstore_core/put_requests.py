"""What ``put`` and ``put_many`` are asked to store, validated on its way to an event.

Pure apart from reading the sources' paths: the registry's answers (retention class,
inputs, package id) are handed in by ``ArtifactStore``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from artifactstore_core.domain import events as ev
from artifactstore_core.domain.limits import check_optional_text, check_text
from artifactstore_core.domain.manifest import (
    FileEntry,
    Provenance,
    manifest_document,
    normalize_json_object,
    package_digest,
)
from artifactstore_core.domain.names import (
    validate_class_name,
    validate_file_paths,
    validate_kind,
    validate_name,
)
from artifactstore_core.domain.package import Package
from artifactstore_core.domain.references import Reference
from artifactstore_core.errors import InvalidInputError
from artifactstore_core.eventlog import RecordedEvent
from artifactstore_core.hashing import BlobHash, Digest, DigestError
from artifactstore_core.projections.projectors import parse_time
from artifactstore_core.sources import Files, FileSource, collect
from artifactstore_core.storage import StoredBlob


@dataclass(frozen=True)
class PutRequest:
    """One package for ``ArtifactStore.put_many``: the arguments of ``put``."""

    name: str
    files: Files
    kind: str = "output"
    metadata: Mapping[str, Any] | None = None
    retention_class: str | None = None
    inputs: Sequence[Reference] = ()
    provenance: Provenance | Mapping[str, Any] | None = None
    expected: Mapping[str, str | Digest | BlobHash] | None = None


def parse_expected(
    expected: Mapping[str, str | Digest | BlobHash], paths: set[str]
) -> dict[str, Digest | BlobHash]:
    result: dict[str, Digest | BlobHash] = {}
    for path, value in expected.items():
        if path not in paths:
            raise InvalidInputError(
                f"expected digest given for {path!r}, which is not a file of the package"
            )
        try:
            result[path] = value if isinstance(value, Digest | BlobHash) else Digest.parse(value)
        except DigestError as exc:
            raise InvalidInputError(f"expected digest for {path!r}: {exc}") from exc
    return result


def checked_provenance(value: Provenance | Mapping[str, Any] | None) -> Provenance:
    """Provenance whose fields are bounded text and whose attributes are a bounded JSON
    object (``domain.limits``); ``inputs`` are resolved later, by the registry."""
    if not isinstance(value, Provenance):
        data = normalize_json_object(value, "provenance")
        for key, kind, called in (("inputs", list, "array"), ("attributes", dict, "object")):
            if not isinstance(data.get(key) or kind(), kind):
                raise InvalidInputError(
                    f"provenance {key} must be a JSON {called}, got {data[key]!r:.60}"
                )
        value = Provenance.from_dict(data)
    for field in ("producer", "run_id", "code_version", "actor"):
        check_optional_text(getattr(value, field), f"provenance {field}")
    for index, reference in enumerate(value.inputs):
        check_text(reference, f"provenance input {index}")
    normalize_json_object(value.attributes, "provenance.attributes")
    return value


@contextlib.contextmanager
def naming_request(index: int, request: PutRequest, count: int) -> Iterator[None]:
    """Prefix input errors of a batch with the request they concern."""
    try:
        yield
    except InvalidInputError as exc:
        if count == 1:
            raise
        raise type(exc)(f"request {index} ({request.name!r}): {exc}") from exc


@dataclass
class PreparedPut:
    """A validated request on its way to becoming a ``PackageRegistered`` event."""

    name: str
    kind: str
    metadata: dict[str, Any]
    provenance: Provenance
    class_name: str
    sources: list[FileSource]
    expected: dict[str, Digest | BlobHash]
    duration: int | None = None
    package_id: uuid.UUID | None = None

    @classmethod
    def build(cls, request: PutRequest, default_class: str) -> PreparedPut:
        validate_name(request.name)
        validate_kind(request.kind)
        class_name = validate_class_name(request.retention_class or default_class)
        metadata = normalize_json_object(request.metadata, "metadata")
        provenance = checked_provenance(request.provenance)
        if isinstance(request.inputs, str | bytes) or not isinstance(request.inputs, Iterable):
            raise InvalidInputError(
                f"inputs must be a list of package references, got {request.inputs!r:.60}"
            )
        sources = collect(request.files)
        validate_file_paths(source.path for source in sources)
        return cls(
            name=request.name,
            kind=request.kind,
            metadata=metadata,
            provenance=provenance,
            class_name=class_name,
            sources=sources,
            expected=parse_expected(request.expected or {}, {s.path for s in sources}),
        )

    def resolved(
        self, duration: int | None, inputs: list[str], actor: str, package_id: uuid.UUID
    ) -> None:
        """Record what the registry said about the request."""
        check_text(actor, "actor")
        prov = self.provenance
        self.provenance = Provenance(
            producer=prov.producer,
            run_id=prov.run_id,
            code_version=prov.code_version,
            actor=prov.actor or actor,
            inputs=tuple(dict.fromkeys([*prov.inputs, *inputs])),
            attributes=prov.attributes,
        )
        self.duration = duration
        self.package_id = package_id

    def event(
        self, blobs: Sequence[StoredBlob], version: int, now: dt.datetime
    ) -> ev.PackageRegistered:
        entries = [FileEntry(s.path, b.hash) for s, b in zip(self.sources, blobs, strict=True)]
        document = manifest_document(self.kind, entries, self.metadata, self.provenance)
        digest = package_digest(document)
        expires = None if self.duration is None else now + dt.timedelta(seconds=self.duration)
        return ev.PackageRegistered(
            package_id=str(self.package_id),
            name=self.name,
            version=version,
            kind=self.kind,
            content_address=digest.content_address,
            digest_sha256=digest.sha256.hex,
            size=sum(e.blob.size for e in entries),
            files=document["files"],
            metadata=self.metadata,
            provenance=self.provenance.to_dict(),
            retention_class=self.class_name,
            expires_at=expires.isoformat() if expires else None,
        )

    def package(self, recorded: RecordedEvent) -> Package:
        """The registered package, as ``describe`` would return it."""
        event = recorded.event
        assert isinstance(event, ev.PackageRegistered) and self.package_id is not None
        return Package(
            id=self.package_id,
            name=self.name,
            version=event.version,
            kind=self.kind,
            content_address=event.content_address,
            digest_sha256=event.digest_sha256,
            size=event.size,
            created_at=recorded.created_at,
            actor=recorded.actor,
            metadata=self.metadata,
            provenance=self.provenance,
            files=tuple(sorted(map(FileEntry.from_dict, event.files), key=lambda e: e.path)),
            retention_class=self.class_name,
            expires_at=parse_time(event.expires_at),
            tags=("latest",),
        )
