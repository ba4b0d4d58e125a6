"""Attestations as data: a signed statement, who signs one, and which packages are
attested at registration. The registry's side is ``artifactstore_core.attestations``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from artifactstore_core.domain.package import Package

ENVELOPE_MEDIA_TYPE = "application/vnd.in-toto.provenance+dsse"
"""The media type of one DSSE envelope of an in-toto provenance statement."""


@dataclass(frozen=True)
class SignedStatement:
    """One signed statement: its DSSE envelope (JSON, one line) and what it claims."""

    envelope: bytes
    predicate_type: str
    key_ids: tuple[str, ...]


class Attestor(Protocol):
    """Makes and signs the statement about a package (``evidence.attest.DsseAttestor``)."""

    def sign(self, subject: Package, inputs: Sequence[Package]) -> SignedStatement:
        """The signed statement about ``subject``, built from ``inputs`` (its input
        packages); called under the chain lock when attesting at registration."""
        ...


@dataclass(frozen=True)
class AutoAttest:
    """Attest every package registered in one of ``classes``, in its registration's
    transaction (settings ``ARTIFACTSTORE_ATTEST_CLASSES``, ``ARTIFACTSTORE_SIGNING_KEY``)."""

    classes: frozenset[str]
    attestor: Attestor


def mirrored_hold_id(hold_id: uuid.UUID | str, attestation_id: uuid.UUID | str) -> uuid.UUID:
    """The id of the hold that hold ``hold_id`` of a subject places on its attestation
    ``attestation_id`` (derived, so a release finds it without a lookup table)."""
    return uuid.uuid5(uuid.UUID(str(hold_id)), str(attestation_id))
