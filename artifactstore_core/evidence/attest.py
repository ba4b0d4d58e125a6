"""Signing attestations: the in-toto provenance statement of a package in a DSSE envelope
(``domain.statement`` and ``evidence.dsse``), for ``ArtifactStore.attest`` and for
attesting at registration (settings ``ARTIFACTSTORE_ATTEST_CLASSES`` and
``ARTIFACTSTORE_SIGNING_KEY``)."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from artifactstore_core.config import Settings
from artifactstore_core.domain.attestation import AutoAttest, SignedStatement
from artifactstore_core.domain.package import Package
from artifactstore_core.domain.statement import provenance_statement, statement_bytes
from artifactstore_core.errors import ConfigurationError
from artifactstore_core.evidence.statements import DEFAULT_ORIGIN, statement_defaults

if TYPE_CHECKING:  # securesystemslib's signers import boto3 (~0.3 s): only when signing
    from securesystemslib.signer import Signer


def _versions() -> dict[str, str]:
    return {"artifact-store": importlib.metadata.version("artifact-store")}


@dataclass(frozen=True)
class DsseAttestor:
    """Signs the provenance statement of a package with ``signer`` (``Attestor``).

    ``builder_id`` and ``origin`` as ``evidence.statements.statement_for`` defaults them
    (``from_settings``); ``versions`` are the builder's component versions.
    """

    signer: Signer
    builder_id: str
    origin: str = DEFAULT_ORIGIN
    versions: Mapping[str, str] = field(default_factory=_versions)

    @classmethod
    def from_settings(
        cls, signer: Signer, settings: Settings, *, actor: str | None = None
    ) -> DsseAttestor:
        """The attestor of a registry configured by ``settings`` (builder id: setting
        ``ARTIFACTSTORE_BUILDER_ID``, else ``urn:artifactstore:builder:<actor>``)."""
        return cls(signer, *statement_defaults(settings, actor or settings.actor))

    def sign(self, subject: Package, inputs: Sequence[Package]) -> SignedStatement:
        """The signed statement about ``subject`` (``Attestor``)."""
        statement = provenance_statement(
            subject, inputs, origin=self.origin, builder_id=self.builder_id,
            versions=self.versions,
        )  # fmt: skip
        from artifactstore_core.evidence.dsse import sign_envelope

        envelope = sign_envelope(statement_bytes(statement), self.signer)
        return SignedStatement(
            envelope, statement["predicateType"], (self.signer.public_key.keyid,)
        )


def auto_attest(settings: Settings) -> AutoAttest | None:
    """What a registry configured by ``settings`` attests at registration: packages of
    ``ARTIFACTSTORE_ATTEST_CLASSES``, signed with ``ARTIFACTSTORE_SIGNING_KEY`` (``None``
    when no class is named; ``ConfigurationError`` when classes are named without a key)."""
    classes = frozenset(settings.attest_classes)
    if not classes:
        return None
    if not settings.signing_key:
        raise ConfigurationError(
            f"ARTIFACTSTORE_ATTEST_CLASSES names {', '.join(sorted(classes))} but "
            "ARTIFACTSTORE_SIGNING_KEY is not set: set the key that signs their attestations"
        )
    from artifactstore_core.evidence.keys import load_signer

    signer = load_signer(settings.signing_key.get_secret_value())
    return AutoAttest(classes, DsseAttestor.from_settings(signer, settings))
