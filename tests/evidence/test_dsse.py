"""DSSE envelopes: the spec's PAE vector, round trips in both base64 alphabets, agreement
with securesystemslib's own Envelope, and every wrong key, alteration and malformed part
refused naming it."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner

from artifactstore_core.errors import EvidenceError, InvalidInputError
from artifactstore_core.evidence.dsse import PAYLOAD_TYPE, pae, sign_envelope, verify_envelope

pytestmark = pytest.mark.unit

#: Bytes whose base64 holds "+" and "/", so the URL-safe form differs.
PAYLOAD = b'{"_type":"https://in-toto.io/Statement/v1"}' + bytes(range(250, 256)) * 8


def test_pae_matches_the_specs_test_vector() -> None:
    expected = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert pae("http://example.com/HelloWorld", b"hello world") == expected
    assert pae("", b"") == b"DSSEv1 0  0 "
    assert pae("t\u00e9", b"x") == "DSSEv1 3 t\u00e9 1 x".encode()  # length in bytes


def test_round_trip_returns_the_signed_bytes(signer: CryptoSigner) -> None:
    envelope = sign_envelope(PAYLOAD, signer)
    data = json.loads(envelope)
    assert list(data) == ["payload", "payloadType", "signatures"]  # canonical: sorted keys
    assert data["payloadType"] == PAYLOAD_TYPE
    assert data["signatures"][0]["keyid"] == signer.public_key.keyid
    verified = verify_envelope(envelope, [signer.public_key])
    assert (verified.payload, verified.payload_type) == (PAYLOAD, PAYLOAD_TYPE)
    assert verified.key_ids == (signer.public_key.keyid,)


def _url_safe(text: str) -> str:
    return text.replace("+", "-").replace("/", "_").rstrip("=")


def test_url_safe_unpadded_base64_verifies_too(signer: CryptoSigner) -> None:
    data = json.loads(sign_envelope(PAYLOAD, signer))
    assert "+" in data["payload"] or "/" in data["payload"]
    data["payload"] = _url_safe(data["payload"])
    data["signatures"][0]["sig"] = _url_safe(data["signatures"][0]["sig"])
    verified = verify_envelope(json.dumps(data).encode(), [signer.public_key])
    assert verified.payload == PAYLOAD


def test_agrees_with_securesystemslib_envelopes(signer: CryptoSigner) -> None:
    ours = json.loads(sign_envelope(PAYLOAD, signer))
    Envelope.from_dict(ours).verify([signer.public_key], 1)  # raises if it disagrees
    theirs = Envelope(PAYLOAD, PAYLOAD_TYPE, {})
    theirs.sign(signer)
    assert theirs.pae() == pae(PAYLOAD_TYPE, PAYLOAD)
    assert verify_envelope(json.dumps(theirs.to_dict()).encode(), [signer.public_key]).payload == (
        PAYLOAD
    )


@pytest.mark.parametrize("hint", [None, "not-the-key-id", ""])
def test_the_keyid_is_only_a_hint(signer: CryptoSigner, hint: str | None) -> None:
    """A valid signature verifies whatever its keyid says (securesystemslib Issue #416)."""
    data = json.loads(sign_envelope(PAYLOAD, signer))
    if hint is None:
        del data["signatures"][0]["keyid"]
    else:
        data["signatures"][0]["keyid"] = hint
    verified = verify_envelope(json.dumps(data).encode(), [signer.public_key])
    assert verified.key_ids == (signer.public_key.keyid,)


def test_a_wrong_key_is_refused_naming_the_signature(
    signer: CryptoSigner, other_signer: CryptoSigner
) -> None:
    envelope = sign_envelope(PAYLOAD, signer)
    with pytest.raises(
        EvidenceError, match=r"signature 0 \(key id [0-9a-f]{64}\) is by none of the given keys"
    ):
        verify_envelope(envelope, [other_signer.public_key])


def _altered(envelope: bytes, **changes: Any) -> bytes:
    data = json.loads(envelope)
    data.update(changes)
    return json.dumps(data).encode()


def test_an_altered_payload_or_type_is_refused(signer: CryptoSigner) -> None:
    envelope = sign_envelope(PAYLOAD, signer)
    tampered = _altered(envelope, payload=base64.b64encode(PAYLOAD + b" ").decode())
    with pytest.raises(EvidenceError, match=r"signature 0 by key [0-9a-f]{64} does not verify"):
        verify_envelope(tampered, [signer.public_key])
    retyped = _altered(envelope, payloadType="application/json")
    with pytest.raises(
        EvidenceError, match="payloadType is 'application/json', not 'application/vnd"
    ):
        verify_envelope(retyped, [signer.public_key])
    with pytest.raises(EvidenceError, match=r"signature 0 by key \w+ does not verify"):
        verify_envelope(retyped, [signer.public_key], payload_type=None)  # PAE covers the type
    sig = json.loads(envelope)["signatures"][0]
    flipped = bytearray(base64.b64decode(sig["sig"]))
    flipped[0] ^= 1
    resigned = _altered(envelope, signatures=[{**sig, "sig": base64.b64encode(flipped).decode()}])
    with pytest.raises(EvidenceError, match="does not verify"):
        verify_envelope(resigned, [signer.public_key])


def _envelope(**fields: Any) -> bytes:
    """An envelope with a valid type, payload and one signature, but for ``fields``."""
    valid = {"payloadType": "t", "payload": "eA==", "signatures": [{"sig": "eA=="}]}
    return json.dumps(valid | fields).encode()


@pytest.mark.parametrize(
    ("envelope", "part"),
    [
        (b"{not json", "the envelope is not JSON"),
        (b"\xff\xfe", "the envelope is not JSON"),
        (b"[]", "the envelope is not a JSON object"),
        (b'{"payload":"eA==","signatures":[{"sig":"eA=="}]}', "payloadType is missing"),
        (_envelope(payloadType=1), "payloadType is missing or not text"),
        (_envelope(payload=None), "the envelope's payload is missing"),
        (_envelope(payload="e*A="), "the envelope's payload is not base64"),
        (_envelope(signatures=None), "the envelope has no signatures list"),
        (_envelope(signatures=[]), "no signatures list"),
        (_envelope(signatures={}), "no signatures list"),
        (_envelope(signatures=["x"]), "signature 0 of the envelope is not a JSON object"),
        (_envelope(signatures=[{"keyid": "k"}]), "signature 0's sig is missing"),
        (_envelope(signatures=[{"sig": "%%"}]), "signature 0's sig is not base64"),
        (_envelope(signatures=[{"sig": "eA==", "keyid": 7}]), "keyid that is not text"),
    ],
)
def test_malformed_envelopes_name_the_part(
    signer: CryptoSigner, envelope: bytes, part: str
) -> None:
    with pytest.raises(EvidenceError, match=part):
        verify_envelope(envelope, [signer.public_key], payload_type=None)


def test_a_threshold_counts_distinct_keys(signer: CryptoSigner, other_signer: CryptoSigner) -> None:
    both = [signer.public_key, other_signer.public_key]
    envelope = sign_envelope(PAYLOAD, [signer, other_signer])
    assert set(verify_envelope(envelope, both, 2).key_ids) == {k.keyid for k in both}
    twice = sign_envelope(PAYLOAD, [signer, signer])  # one key signing twice counts once
    with pytest.raises(
        EvidenceError, match=r"1 signature\(s\) verify, 2 needed: signature 1 is by key \w+ again"
    ):
        verify_envelope(twice, both, 2)
    with pytest.raises(InvalidInputError, match="threshold 3 must be between 1 and"):
        verify_envelope(envelope, both, 3)
    with pytest.raises(InvalidInputError, match="at least one signer"):
        sign_envelope(PAYLOAD, [])


def test_ecdsa_keys_sign_and_verify_too() -> None:
    """Keys held in a KMS are often ECDSA P-256; nothing here is Ed25519-specific."""
    ecdsa = CryptoSigner.generate_ecdsa()
    envelope = sign_envelope(PAYLOAD, ecdsa)
    assert verify_envelope(envelope, [ecdsa.public_key]).payload == PAYLOAD
