"""Package manifests and their digest: equal content gives equal identity."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import blake3

from artifactstore_core.domain.limits import check_json_size, check_json_value
from artifactstore_core.errors import InvalidInputError
from artifactstore_core.hashing import BlobHash, Digest

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a package: its relative path and the blob that holds its bytes."""

    path: str
    blob: BlobHash

    def to_dict(self) -> JsonObject:
        return {
            "path": self.path,
            "content_address": self.blob.content_address,
            "digest_sha256": self.blob.sha256.hex,
            "size": self.blob.size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileEntry:
        digest = Digest.parse(data["content_address"])
        return cls(
            data["path"], BlobHash(digest, Digest("sha256", data["digest_sha256"]), data["size"])
        )


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a package came from: producer, run, code version, actor, inputs, attributes."""

    producer: str | None = None
    run_id: str | None = None
    code_version: str | None = None
    actor: str | None = None
    inputs: tuple[str, ...] = ()
    attributes: JsonObject = field(default_factory=dict)

    def to_dict(self) -> JsonObject:
        return {
            "producer": self.producer,
            "run_id": self.run_id,
            "code_version": self.code_version,
            "actor": self.actor,
            "inputs": list(self.inputs),
            "attributes": self.attributes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        return cls(
            producer=data.get("producer"),
            run_id=data.get("run_id"),
            code_version=data.get("code_version"),
            actor=data.get("actor"),
            inputs=tuple(data.get("inputs") or ()),
            attributes=dict(data.get("attributes") or {}),
        )


def normalize_json_object(value: Any, what: str) -> JsonObject:
    """A JSON object equal to ``value`` after a JSON round trip; refuses anything else.

    The bounds of ``domain.limits`` apply (depth, size, text, integers); the error names
    the first offending key path.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} must be a JSON object, got {type(value).__name__}")
    check_json_value(value, what)
    result: JsonObject = json.loads(check_json_size(value, what))
    return result


def check_no_path_clashes(paths: Iterable[str]) -> None:
    """Refuse a path that is also a directory of another path (``x`` and ``x/y``): no
    directory can hold such a package. The error names both paths."""
    files = set(paths)
    for path in sorted(files):
        end = path.find("/")
        while end != -1:
            if path[:end] in files:
                raise InvalidInputError(
                    f"file paths {path[:end]!r} and {path!r} clash: {path[:end]!r} would have "
                    "to be both a file and a directory"
                )
            end = path.find("/", end + 1)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same value always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def manifest_document(
    kind: str, files: Sequence[FileEntry], metadata: JsonObject, provenance: Provenance
) -> JsonObject:
    """The canonical manifest a package digest covers (files sorted by path)."""
    return {
        "kind": kind,
        "files": [entry.to_dict() for entry in sorted(files, key=lambda e: e.path)],
        "metadata": metadata,
        "provenance": provenance.to_dict(),
    }


def package_digest(document: JsonObject) -> BlobHash:
    """BLAKE3 and SHA-256 of the canonical manifest document."""
    data = canonical_json(document)
    return BlobHash(
        Digest("blake3", blake3.blake3(data).hexdigest()),
        Digest("sha256", hashlib.sha256(data).hexdigest()),
        len(data),
    )
