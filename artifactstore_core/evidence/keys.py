"""Signing keys: generate Ed25519 key files, load signers from paths or key URIs, load
public keys, and derive a C2SP note verifier key.

A signing key is named by a path or a securesystemslib private key URI:

- ``PATH`` or ``file2:PATH``: a PKCS#8 PEM private key file (unencrypted), as
  ``generate_keypair`` writes it; its public key is derived from it.
- ``awskms:<key ARN>``, ``gcpkms:<key resource>``, ``azurekms:<vault URL>``,
  ``hv:<Vault transit key>``, ``hsm:``, ``gnupg:``, ``tkey:``: keys held by a service
  or device (each needs its client library installed); give the public key too,
  ``load_signer(uri, public_key=...)``.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)
from securesystemslib.exceptions import UnsupportedLibraryError
from securesystemslib.signer import (
    KEY_TYPE_ED25519,
    SIGNER_FOR_URI_SCHEME,
    CryptoSigner,
    Signer,
    SSlibKey,
)

from artifactstore_core.domain.checkpoint import ED25519, NoteVerifier, key_id
from artifactstore_core.errors import InvalidInputError

__all__ = [
    "SSlibKey",
    "Signer",
    "ed25519_public_bytes",
    "generate_keypair",
    "load_public_key",
    "load_signer",
    "public_pem",
    "verifier_key",
]

FILE_SCHEME = CryptoSigner.SCHEME  # "file2"
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]+):")


def generate_keypair(prefix: Path) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair: ``<prefix>.key`` (PKCS#8 PEM, mode 0600) and
    ``<prefix>.pub`` (SubjectPublicKeyInfo PEM); never overwrites a file."""
    key_path, pub_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    if not key_path.parent.is_dir():
        raise InvalidInputError(f"directory {str(key_path.parent)!r} does not exist")
    for path in (key_path, pub_path):
        if os.path.lexists(path):
            raise InvalidInputError(f"{str(path)!r} already exists; keys are never overwritten")
    private = Ed25519PrivateKey.generate()
    _write_new(
        key_path, private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()), 0o600
    )
    try:
        public = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        _write_new(pub_path, public, 0o644)
    except BaseException:
        key_path.unlink()
        raise
    return key_path, pub_path


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise InvalidInputError(
            f"{str(path)!r} already exists; keys are never overwritten"
        ) from None
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        path.unlink()  # a partial key file would block the next attempt
        raise


def load_signer(uri_or_path: str, *, public_key: SSlibKey | str | Path | None = None) -> Signer:
    """The signer a path, ``file2:`` URI or other securesystemslib key URI names (see the
    module docstring); a service's key needs ``public_key`` (a key, PEM text or a file)."""
    public = load_public_key(public_key) if isinstance(public_key, str | Path) else public_key
    found = _SCHEME.match(uri_or_path)
    scheme = found[1] if found else None
    if scheme is None or scheme == FILE_SCHEME or scheme not in SIGNER_FOR_URI_SCHEME:
        if scheme is not None and scheme != FILE_SCHEME and not os.path.exists(uri_or_path):
            raise InvalidInputError(
                f"unknown key URI scheme {scheme!r} in {uri_or_path[:200]!r}; use a key file "
                f"path or one of: {', '.join(sorted(SIGNER_FOR_URI_SCHEME))}"
            )
        path = uri_or_path[len(FILE_SCHEME) + 1 :] if scheme == FILE_SCHEME else uri_or_path
        return _file_signer(path, public)
    if public is None:
        raise InvalidInputError(
            f"key URI {uri_or_path[:200]!r} needs its public key too (a PEM file or text)"
        )
    try:
        return Signer.from_priv_key_uri(uri_or_path, public)
    except (UnsupportedLibraryError, ImportError) as exc:
        raise InvalidInputError(
            f"key URI {uri_or_path[:200]!r} needs a library that is not installed: {exc}"
        ) from exc
    except Exception as exc:  # each service's client raises its own errors
        raise InvalidInputError(
            f"cannot load the key {uri_or_path[:200]!r}: {type(exc).__name__}: {exc}"
        ) from exc


def _file_signer(path: str, public: SSlibKey | None) -> CryptoSigner:
    data = _read(path)
    try:
        private = load_pem_private_key(data, password=None)
    except TypeError:
        raise InvalidInputError(
            f"key file {path!r} is encrypted; give an unencrypted PKCS#8 key"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidInputError(f"{path!r} is not a PEM private key file") from None
    try:
        return CryptoSigner(private, public)
    except (ValueError, UnsupportedLibraryError) as exc:
        raise InvalidInputError(f"cannot sign with key file {path!r}: {exc}") from None


def load_public_key(path_or_pem: str | Path | bytes) -> SSlibKey:
    """The public key in a PEM text or file (SubjectPublicKeyInfo, or a private key's
    public part); its key id is securesystemslib's default (SHA-256 of the key)."""
    if isinstance(path_or_pem, bytes) or str(path_or_pem).lstrip().startswith("-----BEGIN"):
        data = path_or_pem if isinstance(path_or_pem, bytes) else str(path_or_pem).encode()
        where = "the PEM text"
    else:
        data, where = _read(str(path_or_pem)), repr(str(path_or_pem))
    try:
        if b"PRIVATE KEY-----" in data:
            key = load_pem_private_key(data, password=None).public_key()
        else:
            key = load_pem_public_key(data)
        return SSlibKey.from_crypto(key)
    except (ValueError, TypeError, UnsupportedAlgorithm, UnsupportedLibraryError):
        raise InvalidInputError(
            f"{where} is not a PEM public or private key of a supported type "
            "(Ed25519, ECDSA, RSA; unencrypted)"
        ) from None


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InvalidInputError(f"key file {path!r} does not exist") from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read key file {path!r}: {exc.strerror}") from None


def ed25519_public_bytes(key: SSlibKey) -> bytes:
    """The raw 32 bytes of an Ed25519 public key."""
    if key.keytype != KEY_TYPE_ED25519:
        raise InvalidInputError(f"key {key.keyid} is {key.keytype}, not Ed25519")
    return bytes.fromhex(key.keyval["public"])


def public_pem(key: SSlibKey) -> str:
    """The SubjectPublicKeyInfo PEM of ``key``."""
    if key.keytype == KEY_TYPE_ED25519:
        raw = Ed25519PublicKey.from_public_bytes(ed25519_public_bytes(key))
        return raw.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    return str(key.keyval["public"])


def verifier_key(name: str, key: SSlibKey) -> str:
    """The C2SP note verifier key of Ed25519 ``key`` under ``name`` (a log's origin), as
    ``domain.checkpoint.NoteSigner.verifier_key`` gives it for the private key."""
    public = ed25519_public_bytes(key)
    encoded = base64.b64encode(bytes([ED25519]) + public).decode()
    text = f"{name}+{key_id(name, public).hex()}+{encoded}"
    NoteVerifier.parse(text)  # refuses a name a note cannot carry
    return text
