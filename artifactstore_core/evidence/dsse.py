"""DSSE envelopes (secure-systems-lab/dsse v1.0.2): sign a payload, verify an envelope.

A signature covers ``PAE(payloadType, payload)``, never the envelope's JSON. The envelope
is ``{"payload": b64, "payloadType": str, "signatures": [{"keyid": str, "sig": b64}]}``;
verification accepts standard and URL-safe base64, treats ``keyid`` as an
unauthenticated hint (each signature is tried with every given key, unlike
securesystemslib's ``Envelope.verify``, its Issue #416), and returns the payload bytes
it verified, so that callers parse exactly those (never the envelope again).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Signature, Signer, SSlibKey

from artifactstore_core.domain.manifest import canonical_json
from artifactstore_core.errors import BackendUnavailableError, EvidenceError, InvalidInputError

PAYLOAD_TYPE = "application/vnd.in-toto+json"
#: Media type of a stored envelope holding an SLSA provenance statement.
ENVELOPE_MEDIA_TYPE = "application/vnd.in-toto.provenance+dsse"
MAX_SIGNATURES = 100


@dataclass(frozen=True)
class VerifiedPayload:
    """What a verified envelope vouches for: its payload type and bytes, and the ids of
    the given keys whose signatures verified."""

    payload_type: str
    payload: bytes
    key_ids: tuple[str, ...]


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE's pre-authentication encoding: ``DSSEv1 <len> <type> <len> <body>``."""
    encoded = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(encoded), encoded, len(body), body)


def sign_envelope(
    payload: bytes, signer: Signer | Sequence[Signer], payload_type: str = PAYLOAD_TYPE
) -> bytes:
    """The canonical JSON envelope of ``payload`` signed by ``signer`` (or each of them)."""
    signers = [signer] if isinstance(signer, Signer) else list(signer)
    if not signers:
        raise InvalidInputError("an envelope needs at least one signer")
    message = pae(payload_type, payload)
    signatures = []
    for each in signers:
        try:
            signature = each.sign(message)
        except Exception as exc:  # a key service's client raises its own errors
            raise BackendUnavailableError(
                f"signing with key {each.public_key.keyid} failed: {type(exc).__name__}: {exc}"
            ) from exc
        signatures.append(
            {"keyid": signature.keyid, "sig": _b64(bytes.fromhex(signature.signature))}
        )
    return canonical_json(
        {"payload": _b64(payload), "payloadType": payload_type, "signatures": signatures}
    )


def verify_envelope(
    envelope: bytes,
    keys: Sequence[SSlibKey],
    threshold: int = 1,
    *,
    payload_type: str | None = PAYLOAD_TYPE,
) -> VerifiedPayload:
    """The payload of ``envelope`` once signatures by at least ``threshold`` distinct
    ``keys`` verify on it; ``EvidenceError`` names the malformed part or the signatures
    that fail. ``payload_type`` (``None``: any) is the type the caller accepts."""
    if threshold < 1 or threshold > len(keys):
        raise InvalidInputError(
            f"threshold {threshold} must be between 1 and the number of keys ({len(keys)})"
        )
    body_type, payload, signatures = _parse(envelope)
    if payload_type is not None and body_type != payload_type:
        raise EvidenceError(
            f"the envelope's payloadType is {body_type[:100]!r}, not {payload_type!r}"
        )
    message = pae(body_type, payload)
    verified: dict[str, None] = {}
    failures: list[str] = []
    for index, (hint, sig) in enumerate(signatures):
        key = next((k for k in keys if _verifies(k, sig, message)), None)
        if key is not None and key.keyid in verified:
            failures.append(f"signature {index} is by key {key.keyid} again (counted once)")
        elif key is not None:
            verified[key.keyid] = None
        elif any(k.keyid == hint for k in keys):
            failures.append(f"signature {index} by key {hint} does not verify")
        else:
            failures.append(
                f"signature {index} (key id {hint or 'none'}) is by none of the given keys"
            )
    if len(verified) < threshold:
        raise EvidenceError(
            f"{len(verified)} signature(s) verify, {threshold} needed: "
            + "; ".join(failures[:5])
            + (f"; given key ids: {', '.join(k.keyid for k in keys)}" if keys else "")
        )
    return VerifiedPayload(body_type, payload, tuple(verified))


def _verifies(key: SSlibKey, sig: bytes, message: bytes) -> bool:
    try:
        key.verify_signature(Signature(key.keyid, sig.hex()), message)
    except UnverifiedSignatureError:  # VerificationError too: a signature of another form
        return False
    return True


def _parse(envelope: bytes) -> tuple[str, bytes, list[tuple[str | None, bytes]]]:
    """Payload type, payload and (key id hint, signature) pairs; ``EvidenceError`` names
    the part that is malformed."""
    try:
        data = json.loads(envelope)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise EvidenceError("the envelope is not JSON") from None
    if not isinstance(data, dict):
        raise EvidenceError("the envelope is not a JSON object")
    payload_type, payload, signatures = (
        data.get(k) for k in ("payloadType", "payload", "signatures")
    )
    if not isinstance(payload_type, str):
        raise EvidenceError("the envelope's payloadType is missing or not text")
    body = _b64decode(payload, "the envelope's payload")
    if not isinstance(signatures, list) or not signatures:
        raise EvidenceError("the envelope has no signatures list")
    if len(signatures) > MAX_SIGNATURES:
        raise EvidenceError(f"the envelope has {len(signatures)} signatures (max {MAX_SIGNATURES})")
    parsed: list[tuple[str | None, bytes]] = []
    for index, item in enumerate(signatures):
        if not isinstance(item, dict):
            raise EvidenceError(f"signature {index} of the envelope is not a JSON object")
        hint = item.get("keyid")
        if hint is not None and not isinstance(hint, str):
            raise EvidenceError(f"signature {index} of the envelope has a keyid that is not text")
        parsed.append((hint, _b64decode(item.get("sig"), f"signature {index}'s sig")))
    return payload_type, body, parsed


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _b64decode(value: Any, what: str) -> bytes:
    """Standard or URL-safe base64, padded or not (DSSE verifiers must accept both)."""
    if not isinstance(value, str):
        raise EvidenceError(f"{what} is missing or not text")
    url_safe = "-" in value or "_" in value
    try:
        return base64.b64decode(
            value + "=" * (-len(value) % 4), altchars=b"-_" if url_safe else None, validate=True
        )
    except (binascii.Error, ValueError):
        raise EvidenceError(f"{what} is not base64") from None
