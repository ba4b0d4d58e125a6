"""Key files: generated once and never overwritten, loaded as signers from paths and key
URIs, public keys, and the C2SP verifier key agreeing with ``NoteSigner``'s."""

from __future__ import annotations

import resource
import signal
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    load_pem_private_key,
)
from securesystemslib.signer import CryptoSigner

from artifactstore_core.domain.checkpoint import NoteSigner, NoteVerifier
from artifactstore_core.errors import InvalidInputError
from artifactstore_core.evidence.dsse import sign_envelope, verify_envelope
from artifactstore_core.evidence.keys import (
    ed25519_public_bytes,
    generate_keypair,
    load_public_key,
    load_signer,
    public_pem,
    verifier_key,
)
from artifactstore_core.testing.tmpfs import tmpfs

pytestmark = pytest.mark.unit


def test_generate_writes_a_private_and_a_public_pem(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path / "release")
    assert (private.name, public.name) == ("release.key", "release.pub")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----\n")  # PKCS#8
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----\n")  # SubjectPublicKeyInfo
    assert isinstance(load_pem_private_key(private.read_bytes(), None), Ed25519PrivateKey)
    key = load_public_key(public)
    assert (key.keytype, key.scheme) == ("ed25519", "ed25519")
    assert public_pem(key) == public.read_text()
    assert load_public_key(public.read_text()) == key == load_public_key(private)


@pytest.mark.parametrize("existing", ["release.key", "release.pub"])
def test_generate_never_overwrites(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("precious")
    with pytest.raises(InvalidInputError, match=f"'{tmp_path / existing}' already exists"):
        generate_keypair(tmp_path / "release")
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]  # nothing written
    assert (tmp_path / existing).read_text() == "precious"
    with pytest.raises(InvalidInputError, match="does not exist"):
        generate_keypair(tmp_path / "missing" / "release")


def test_signers_load_from_a_path_or_a_file2_uri(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path / "k")
    key = load_public_key(public)
    for uri in (str(private), f"file2:{private}"):
        signer = load_signer(uri)
        assert signer.public_key == key
        assert verify_envelope(sign_envelope(b"x", signer), [key]).payload == b"x"
    assert load_signer(str(private), public_key=public).public_key == key
    other = generate_keypair(tmp_path / "other")[1]
    with pytest.raises(InvalidInputError, match=f"cannot sign with key file '{private}'"):
        load_signer(str(private), public_key=other)


def test_bad_key_files_and_uris_are_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"key file '.*nope\.key' does not exist"):
        load_signer(str(tmp_path / "nope.key"))
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key\n")
    with pytest.raises(InvalidInputError, match=f"'{garbage}' is not a PEM private key file"):
        load_signer(str(garbage))
    with pytest.raises(InvalidInputError, match=f"'{garbage}' is not a PEM public or private"):
        load_public_key(garbage)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"pw")
        )
    )
    with pytest.raises(InvalidInputError, match=f"key file '{locked}' is encrypted"):
        load_signer(str(locked))
    with pytest.raises(
        InvalidInputError,
        match=r"unknown key URI scheme 'vault' in 'vault:k'; use a key file path or one of: .*hv",
    ):
        load_signer("vault:k")
    with pytest.raises(InvalidInputError, match="key URI 'awskms:arn:k' needs its public key"):
        load_signer("awskms:arn:k")


def test_the_verifier_key_is_the_note_signers(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path / "log")
    raw = load_pem_private_key(private.read_bytes(), None)
    assert isinstance(raw, Ed25519PrivateKey)
    note_signer = NoteSigner("registry.example/log", raw)
    key = load_public_key(public)
    assert ed25519_public_bytes(key) == note_signer.public_key
    vkey = verifier_key("registry.example/log", key)
    assert vkey == note_signer.verifier_key
    assert NoteVerifier.parse(vkey).verify(note_signer.sign("hello\n")) == "hello\n"
    with pytest.raises(InvalidInputError, match="invalid key name 'bad name'"):
        verifier_key("bad name", key)
    ecdsa = CryptoSigner.generate_ecdsa().public_key
    with pytest.raises(InvalidInputError, match=f"key {ecdsa.keyid} is ecdsa, not Ed25519"):
        ed25519_public_bytes(ecdsa)
    assert public_pem(ecdsa).startswith("-----BEGIN PUBLIC KEY-----")


def test_a_failed_write_leaves_no_key_file(tmp_path: Path) -> None:
    """On a full disk (a one-page tmpfs; a file-size limit where mounting is not
    permitted) neither file is left behind, so the next attempt is not blocked."""
    directory = tmp_path / "keys"
    directory.mkdir()
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        with tmpfs(directory, size="4k") as not_mounted:
            if not_mounted:
                resource.setrlimit(resource.RLIMIT_FSIZE, (64, limit[1]))
            with pytest.raises(OSError, match=r"No space left on device|File too large"):
                generate_keypair(directory / "release")
            assert list(directory.iterdir()) == []
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)
    assert [p.name for p in generate_keypair(directory / "release")] == [
        "release.key",
        "release.pub",
    ]
