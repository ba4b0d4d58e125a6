"""A key held by a key service: ``awskms:`` signs through securesystemslib's AWS signer
against a real KMS API (the moto server of the S3 tests, which serves KMS too)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA, EllipticCurvePublicKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
    load_pem_public_key,
)
from securesystemslib.signer import AWSSigner

from artifactstore_core.errors import BackendUnavailableError, InvalidInputError
from artifactstore_core.evidence.dsse import PAYLOAD_TYPE, pae, sign_envelope
from artifactstore_core.evidence.keys import load_public_key, load_signer

pytestmark = [pytest.mark.integration, pytest.mark.s3]


@pytest.fixture
def kms_key(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[str, Path]:
    """A KMS ECC P-256 signing key's id and its public key file; boto3 clients made
    afterwards reach the test server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    kms = boto3.client("kms")
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    der = kms.get_public_key(KeyId=key_id)["PublicKey"]
    public = tmp_path / "kms.pub"
    public.write_bytes(
        load_der_public_key(der).public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return key_id, public


def test_an_awskms_key_signs_the_pae_through_the_service(kms_key: tuple[str, Path]) -> None:
    """The service signs the SHA-256 of the envelope's PAE. The test server ignores
    ``MessageType=DIGEST`` and hashes that digest once more before signing, so its
    signature verifies over the digest, not over the PAE as a real KMS signature would."""
    key_id, public = kms_key
    signer = load_signer(f"awskms:{key_id}", public_key=public)
    assert isinstance(signer, AWSSigner) and signer.public_key == load_public_key(public)
    payload = b'{"_type":"https://in-toto.io/Statement/v1"}'
    envelope = json.loads(sign_envelope(payload, signer))
    assert envelope["signatures"][0]["keyid"] == signer.public_key.keyid
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    key = load_pem_public_key(public.read_bytes())
    assert isinstance(key, EllipticCurvePublicKey)
    digest = hashlib.sha256(pae(PAYLOAD_TYPE, payload)).digest()
    key.verify(signature, digest, ECDSA(SHA256()))  # raises InvalidSignature otherwise


def test_service_failures_are_one_line_errors(
    kms_key: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    key_id, public = kms_key
    with pytest.raises(InvalidInputError, match="key URI 'awskms:x' needs its public key"):
        load_signer("awskms:x")
    unknown = load_signer("awskms:00000000-0000-0000-0000-000000000000", public_key=public)
    with pytest.raises(BackendUnavailableError, match=r"signing with key [0-9a-f]{64} failed: "):
        sign_envelope(b"x", unknown)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    with pytest.raises(InvalidInputError, match=f"cannot load the key 'awskms:{key_id}': NoRegion"):
        load_signer(f"awskms:{key_id}", public_key=public)
