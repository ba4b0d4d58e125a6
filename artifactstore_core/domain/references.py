"""Package references: ``id``, ``name@version``, ``name:tag``, ``name`` and ``blake3:<hex>``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from artifactstore_core.domain.limits import check_text, parse_int
from artifactstore_core.domain.names import MAX_NAME, validate_name, validate_tag
from artifactstore_core.domain.package import Package
from artifactstore_core.errors import InvalidInputError
from artifactstore_core.hashing import Digest, DigestError

MAX_REFERENCE = MAX_NAME + 200
"""Characters in a reference: a name and a version, tag or digest."""


@dataclass(frozen=True, slots=True)
class PackageRef:
    """A parsed reference; exactly one way of selecting a package is set."""

    text: str
    package_id: uuid.UUID | None = None
    digest: Digest | None = None
    name: str | None = None
    version: int | None = None
    tag: str | None = None

    def __str__(self) -> str:
        return self.text


def parse_reference(text: str) -> PackageRef:
    """Parse a reference; ``InvalidInputError`` names the text when it is malformed."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(f"empty package reference {text!r}")
    check_text(text, "package reference", max_length=MAX_REFERENCE)
    text = text.strip()
    if text.startswith(("blake3:", "sha256:")):
        try:
            return PackageRef(text, digest=Digest.parse(text))
        except DigestError as exc:
            raise InvalidInputError(f"invalid digest reference {text!r}: {exc}") from exc
    try:
        return PackageRef(text, package_id=uuid.UUID(text))
    except ValueError:
        pass
    if "@" in text:
        name, _, version = text.rpartition("@")
        if not (version.isascii() and version.isdigit()) or not version.strip("0"):
            raise InvalidInputError(f"invalid version in reference {text!r}: use name@1, name@2…")
        number = parse_int(version, f"invalid version in reference {text[:80]!r}:", minimum=1)
        return PackageRef(text, name=validate_name(name), version=number)
    if ":" in text:
        name, _, tag = text.rpartition(":")
        return PackageRef(text, name=validate_name(name), tag=validate_tag(tag))
    return PackageRef(text, name=validate_name(text), tag="latest")


#: What callers may use to name a package: text (id, ``name@version``, ``name:tag``, ``name``,
#: a digest), a package id, a parsed reference or a ``Package``.
Reference = str | uuid.UUID | PackageRef | Package
