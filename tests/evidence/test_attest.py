"""Attesting packages, on SQLite and PostgreSQL: on demand (``store.attest``) and at
registration for configured classes, in the registration's transaction. The stored
envelope verifies with the signer's public key and carries exactly the statement
``statement_for`` exports; a failed signing records nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from securesystemslib.signer import CryptoSigner

from artifactstore_core import PutRequest, Settings
from artifactstore_core.domain.attestation import AutoAttest, SignedStatement
from artifactstore_core.domain.package import Package
from artifactstore_core.errors import BackendUnavailableError, ConfigurationError, EvidenceError
from artifactstore_core.evidence.attest import DsseAttestor
from artifactstore_core.evidence.dsse import verify_envelope
from artifactstore_core.evidence.keys import generate_keypair, load_public_key
from artifactstore_core.evidence.statements import statement_for
from artifactstore_core.schema import artifact_packages, events
from artifactstore_core.store import ArtifactStore

pytestmark = pytest.mark.integration

BUILDER = "https://ci.example/builders/nightly"
ORIGIN = "registry.example/prod"


def _envelope(store: ArtifactStore, attestation: Package) -> bytes:
    (line,) = store.read_bytes(attestation, record=False).splitlines()
    return line


def _counts(store: ArtifactStore) -> tuple[int, int]:
    with store.engine.connect() as conn:
        return (
            int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() or 0),
            int(
                conn.execute(sa.select(sa.func.count()).select_from(artifact_packages)).scalar()
                or 0
            ),
        )


def test_attest_stores_the_signed_statement_of_the_package(
    store: ArtifactStore, signer: CryptoSigner, other_signer: CryptoSigner
) -> None:
    raw = store.put("raw/logs", {"a.log": b"lines"})
    report = store.put("reports/daily", {"summary.csv": b"rows"}, inputs=[raw.id])
    attestor = DsseAttestor(signer, BUILDER, ORIGIN)
    attestation = store.attest("reports/daily@1", attestor)
    verified = verify_envelope(_envelope(store, attestation), [signer.public_key])
    assert verified.key_ids == (signer.public_key.keyid,)
    expected = statement_for(store, report.id, builder_id=BUILDER, origin=ORIGIN)
    assert verified.payload == expected  # exactly what `evidence statement` exports
    statement = json.loads(verified.payload)
    Statement.copy_from_pb(json_format.ParseDict(statement, statement_pb2.Statement())).validate()
    json_format.ParseDict(statement["predicate"], provenance_pb2.Provenance())
    assert statement["subject"][0]["digest"] == {"sha256": report.digest_sha256}
    assert attestation.metadata["key_ids"] == [signer.public_key.keyid]
    assert attestation.metadata["media_type"] == "application/vnd.in-toto.provenance+dsse"
    (linked,) = [e.event for e in store.events() if e.event.event_type == "PackageAttested"]
    assert linked.to_payload()["key_ids"] == [signer.public_key.keyid]
    with pytest.raises(EvidenceError, match="by none of the given keys"):
        verify_envelope(_envelope(store, attestation), [other_signer.public_key])


class FailingAttestor:
    """A signer whose key service is down."""

    def sign(self, subject: Package, inputs: Sequence[Package]) -> SignedStatement:
        raise BackendUnavailableError(f"key service unreachable while signing {subject.reference}")


@pytest.fixture
def attesting(database_url: str, tmp_path: Path, signer: CryptoSigner) -> Iterator[ArtifactStore]:
    auto = AutoAttest(frozenset({"release-evidence"}), DsseAttestor(signer, BUILDER, ORIGIN))
    opened = ArtifactStore.open(database_url, str(tmp_path / "blobs"), auto_attest=auto)
    try:
        yield opened
    finally:
        opened.close()


def test_packages_of_configured_classes_are_attested_in_their_registration(
    attesting: ArtifactStore, signer: CryptoSigner
) -> None:
    plain = attesting.put("scratch/x", {"f": b"x"}, retention_class="transient")
    assert plain.attestations == ()
    head = max(e.sequence for e in attesting.events())
    release = attesting.put("releases/app", {"app.tar": b"tar"}, retention_class="release-evidence")
    assert release.attestations == (".attestations/releases/app/1@1",)
    (attestation,) = attesting.attestations(release)
    assert attestation.attests == "releases/app@1"
    payload = verify_envelope(_envelope(attesting, attestation), [signer.public_key]).payload
    assert payload == statement_for(attesting, release.id, builder_id=BUILDER, origin=ORIGIN)
    recorded = attesting.events(since=head)
    assert [e.event.event_type for e in recorded] == [
        "PackageRegistered", "PackageRegistered", "PackageAttested", "BlobStored", "BlobStored",
    ]  # fmt: skip
    assert len({e.created_at for e in recorded}) == 1  # one transaction
    batch = attesting.put_many(
        [
            PutRequest("releases/r1", {"f": b"1"}, retention_class="release-evidence"),
            PutRequest("releases/r2", {"f": b"2"}, retention_class="release-evidence"),
            PutRequest("scratch/y", {"f": b"y"}, retention_class="transient"),
        ]
    )
    assert [len(p.attestations) for p in batch] == [1, 1, 0]
    assert attesting.check_views() == []


def test_a_failed_signing_registers_nothing(database_url: str, tmp_path: Path) -> None:
    auto = AutoAttest(frozenset({"release-evidence"}), FailingAttestor())
    with ArtifactStore.open(database_url, str(tmp_path / "b"), auto_attest=auto) as store:
        before = _counts(store)
        with pytest.raises(BackendUnavailableError, match="releases/app@1"):
            store.put("releases/app", {"app.tar": b"tar"}, retention_class="release-evidence")
        assert _counts(store) == before
        with pytest.raises(BackendUnavailableError):
            store.attest(store.put("scratch/x", {"f": b"x"}).id, FailingAttestor())
        assert store.attestations("scratch/x@1") == []


def test_settings_name_the_classes_and_the_key(database_url: str, tmp_path: Path) -> None:
    where = {"database_url": database_url, "storage_url": str(tmp_path / "blobs")}
    settings = Settings(**where, attest_classes="release-evidence")
    with pytest.raises(ConfigurationError, match="ARTIFACTSTORE_SIGNING_KEY is not set"):
        ArtifactStore.from_settings(settings)
    private, public = generate_keypair(tmp_path / "release")
    keyed = Settings(
        **where,
        attest_classes=["release-evidence"],
        signing_key=str(private),
        builder_id=BUILDER,
    )
    with ArtifactStore.from_settings(keyed) as store:
        release = store.put("releases/app", {"a": b"a"}, retention_class="release-evidence")
        (attestation,) = store.attestations(release)
        verified = verify_envelope(_envelope(store, attestation), [load_public_key(public)])
        assert json.loads(verified.payload)["predicate"]["runDetails"]["builder"]["id"] == BUILDER


def test_a_put_attested_by_its_caller(store: ArtifactStore, signer: CryptoSigner) -> None:
    before = _counts(store)
    requests = [PutRequest("reports/a", {"f": b"a"}), PutRequest("reports/b", {"f": b"b"})]
    with pytest.raises(BackendUnavailableError, match="reports/a@1"):
        store.put_many(requests, attestor=FailingAttestor())
    assert _counts(store) == before
    packages = store.put_many(requests, attestor=DsseAttestor(signer, BUILDER, ORIGIN))
    assert [p.attestations for p in packages] == [
        (".attestations/reports/a/1@1",), (".attestations/reports/b/1@1",),
    ]  # fmt: skip
    for package in packages:
        (attestation,) = store.attestations(package)
        payload = verify_envelope(_envelope(store, attestation), [signer.public_key]).payload
        assert json.loads(payload)["subject"][0]["name"] == package.reference
