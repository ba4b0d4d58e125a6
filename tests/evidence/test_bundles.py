"""Offline evidence bundles (issue #15 item 5), exported from registries on SQLite and
PostgreSQL and verified with no registry: an auditor given the bundle and two public keys
learns which files, from which run and inputs, signed by whom, logged where; every part
altered, swapped or cut away fails naming it."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from securesystemslib.signer import CryptoSigner

from artifactstore_core.domain.checkpoint import NoteSigner, NoteVerifier
from artifactstore_core.domain.manifest import Provenance
from artifactstore_core.errors import (
    CheckpointError,
    EvidenceError,
    IntegrityError,
    InvalidInputError,
)
from artifactstore_core.evidence.attest import DsseAttestor
from artifactstore_core.evidence.bundle import verify_bundle
from artifactstore_core.evidence.keys import public_pem
from artifactstore_core.store import ArtifactStore

pytestmark = pytest.mark.integration

ORIGIN = "registry.example/prod"
SCRIPT = str(Path(sys.executable).parent / "artifactstore")


@pytest.fixture
def log_signer() -> NoteSigner:
    return NoteSigner(ORIGIN, Ed25519PrivateKey.generate())


@pytest.fixture
def registry(store: ArtifactStore, log_signer: NoteSigner) -> ArtifactStore:
    store.log_signer = log_signer
    raw = store.put("raw/logs", {"a.log": b"lines\n"})
    store.put(
        "reports/daily",
        {"summary.csv": b"a,b\n1,2\n", "charts/plot.svg": b"<svg/>"},
        inputs=[raw.id],
        provenance=Provenance(run_id="run-42", code_version="a" * 40, producer="nightly"),
    )
    return store


def _verify(path: Path, signer: CryptoSigner, log_signer: NoteSigner) -> dict[str, object]:
    report = verify_bundle(
        path, keys=[signer.public_key], log_verifier=NoteVerifier.parse(log_signer.verifier_key)
    )
    return report.to_dict()


def test_a_bundle_proves_files_run_inputs_signer_and_log_position(
    registry: ArtifactStore, signer: CryptoSigner, log_signer: NoteSigner, tmp_path: Path
) -> None:
    registry.attest("reports/daily", DsseAttestor(signer, "urn:test:builder", ORIGIN))
    registry.export_evidence("reports/daily", tmp_path / "bundle")
    registry.export_evidence("reports/daily", tmp_path / "bundle.tar")
    package = registry.describe("reports/daily")
    for form in ("bundle", "bundle.tar"):
        result = _verify(tmp_path / form, signer, log_signer)
        assert result["package"] == "reports/daily@1"
        assert result["package_id"] == str(package.id)
        assert (result["files"], result["size"]) == (2, package.size)
        assert result["signed_by"] == [signer.public_key.keyid]
        assert result["run_id"] == "run-42"
        inputs = result["inputs"]
        assert isinstance(inputs, list) and "raw/logs@1" in inputs, inputs
        log = result["log"]
        assert isinstance(log, dict) and log["origin"] == ORIGIN
    files = sorted(p.relative_to(tmp_path / "bundle").as_posix()
                   for p in (tmp_path / "bundle").rglob("*") if p.is_file())  # fmt: skip
    assert files == [
        "attestations.intoto.jsonl", "bundle.json", "files/charts/plot.svg",
        "files/summary.csv", "keys/log.vkey", "manifest.json", "registration.cbor",
        "registration.tlog-proof",
    ]  # fmt: skip


def test_signing_at_export_needs_no_stored_attestation(
    registry: ArtifactStore, signer: CryptoSigner, log_signer: NoteSigner, tmp_path: Path
) -> None:
    with pytest.raises(EvidenceError, match="has no attestation"):
        registry.export_evidence("reports/daily", tmp_path / "unsigned")
    assert not (tmp_path / "unsigned").exists()
    registry.export_evidence("reports/daily", tmp_path / "b", signer=signer)
    assert _verify(tmp_path / "b", signer, log_signer)["signed_by"] == [signer.public_key.keyid]
    pem = (tmp_path / "b" / "keys" / f"{signer.public_key.keyid}.pub").read_text()
    assert pem == public_pem(signer.public_key)


def _edit_json_line(path: Path, edit: Callable[[dict[str, object]], None]) -> None:
    envelope = json.loads(path.read_text().splitlines()[0])
    edit(envelope)
    path.write_text(json.dumps(envelope) + "\n")


def _payload(envelope: dict[str, object]) -> None:
    statement = json.loads(base64.b64decode(str(envelope["payload"])))
    statement["subject"][1]["digest"]["sha256"] = "0" * 64
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()


def _signature(envelope: dict[str, object]) -> None:
    signatures = envelope["signatures"]
    assert isinstance(signatures, list)
    sig = bytearray(base64.b64decode(signatures[0]["sig"]))
    sig[0] ^= 1
    signatures[0]["sig"] = base64.b64encode(bytes(sig)).decode()


def _proof_path(root: Path) -> None:
    lines = (root / "registration.tlog-proof").read_text().split("\n")
    lines[3] = base64.b64encode(bytes(32)).decode()
    (root / "registration.tlog-proof").write_text("\n".join(lines))


def _checkpoint(root: Path) -> None:
    text = (root / "registration.tlog-proof").read_text()
    head, _, note = text.partition("\n\n")
    origin, size, rest = note.split("\n", 2)
    (root / "registration.tlog-proof").write_text(f"{head}\n\n{origin}\n{int(size) + 1}\n{rest}")


TAMPERING: dict[str, tuple[Callable[[Path], None], type[Exception], str]] = {
    "a file's bytes": (lambda r: (r / "files/summary.csv").write_bytes(b"a,b\n1,3\n"),
                       IntegrityError, "files/summary.csv is not the registered file"),
    "a file removed": (lambda r: (r / "files/charts/plot.svg").unlink(),
                       EvidenceError, "no files/charts/plot.svg"),
    "a file added": (lambda r: (r / "files/extra.txt").write_text("x"),
                     EvidenceError, "files/extra.txt, which the manifest does not list"),
    "the manifest": (lambda r: (r / "manifest.json").write_text(
                         (r / "manifest.json").read_text().replace('"kind":"output"',
                                                                   '"kind":"report"')),
                     EvidenceError, "not the manifest of reports/daily@1"),
    "the statement": (lambda r: _edit_json_line(r / "attestations.intoto.jsonl", _payload),
                      EvidenceError, "no statement in the bundle is signed"),
    "the signature": (lambda r: _edit_json_line(r / "attestations.intoto.jsonl", _signature),
                      EvidenceError, "no statement in the bundle is signed"),
    "the proof": (_proof_path, CheckpointError, "does not lead to the root"),
    "the checkpoint": (_checkpoint, CheckpointError, "does not verify"),
    "the event": (lambda r: (r / "registration.cbor").write_bytes(
                      (r / "registration.cbor").read_bytes() + b"\x00"),
                  EvidenceError, "not the payload of the proven event"),
    "the proof removed": (lambda r: (r / "registration.tlog-proof").unlink(),
                          EvidenceError, "no registration.tlog-proof"),
}  # fmt: skip


@pytest.mark.parametrize("part", list(TAMPERING))
def test_each_altered_part_fails_naming_it(
    registry: ArtifactStore, signer: CryptoSigner, log_signer: NoteSigner, tmp_path: Path,
    part: str,
) -> None:  # fmt: skip
    registry.export_evidence("reports/daily", tmp_path / "good", signer=signer)
    shutil.copytree(tmp_path / "good", tmp_path / "bad")
    alter, error, message = TAMPERING[part]
    alter(tmp_path / "bad")
    with pytest.raises(error, match=message):
        _verify(tmp_path / "bad", signer, log_signer)
    _verify(tmp_path / "good", signer, log_signer)


def test_swapped_statements_wrong_keys_and_cut_archives_fail(
    registry: ArtifactStore, signer: CryptoSigner, other_signer: CryptoSigner,
    log_signer: NoteSigner, tmp_path: Path,
) -> None:  # fmt: skip
    registry.export_evidence("reports/daily", tmp_path / "report", signer=signer)
    registry.export_evidence("raw/logs", tmp_path / "raw", signer=signer)
    shutil.copy(tmp_path / "raw/attestations.intoto.jsonl", tmp_path / "report")
    with pytest.raises(EvidenceError, match=r"about package raw/logs@1 .* not reports/daily@1"):
        _verify(tmp_path / "report", signer, log_signer)
    for name in ("registration.cbor", "registration.tlog-proof"):  # another package's event
        shutil.copy(tmp_path / "raw" / name, tmp_path / "report")
    with pytest.raises(EvidenceError, match="not the manifest of raw/logs@1"):
        _verify(tmp_path / "report", signer, log_signer)

    with pytest.raises(EvidenceError, match="signed by the given key"):
        _verify(tmp_path / "raw", other_signer, log_signer)
    with pytest.raises(CheckpointError, match="no signature by key"):
        _verify(tmp_path / "raw", signer, NoteSigner(ORIGIN + "2", log_signer.private_key))
    with pytest.raises(CheckpointError, match=f"no signature by key '{ORIGIN}'"):
        _verify(tmp_path / "raw", signer, NoteSigner(ORIGIN, Ed25519PrivateKey.generate()))

    registry.export_evidence("raw/logs", tmp_path / "raw.tar", signer=signer)
    data = (tmp_path / "raw.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 3])
    with pytest.raises(EvidenceError):
        _verify(tmp_path / "cut.tar", signer, log_signer)
    with pytest.raises(InvalidInputError, match="exists"):
        registry.export_evidence("raw/logs", tmp_path / "raw.tar", signer=signer)
    assert (tmp_path / "raw.tar").read_bytes() == data


def test_the_cli_exports_and_verifies_offline_exit_1_on_tampering(
    registry: ArtifactStore, log_signer: NoteSigner, database_url: str, tmp_path: Path
) -> None:
    assert isinstance(log_signer.private_key, Ed25519PrivateKey)
    keys = subprocess.run([SCRIPT, "keys", "generate", str(tmp_path / "signing")],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert keys.returncode == 0
    (tmp_path / "log.key").write_bytes(
        log_signer.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    env = {
        "PATH": str(Path(sys.executable).parent),
        "ARTIFACTSTORE_DATABASE_URL": database_url,
        "ARTIFACTSTORE_STORAGE_URL": str(tmp_path / "blobs"),
        "ARTIFACTSTORE_LOG_KEY": str(tmp_path / "log.key"),
        "ARTIFACTSTORE_LOG_ORIGIN": ORIGIN,
    }
    export = subprocess.run(
        [SCRIPT, "evidence", "export", "reports/daily@1", str(tmp_path / "b.tar"),
         "--sign", str(tmp_path / "signing.key"), "--json"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    offline = {"PATH": env["PATH"], "ARTIFACTSTORE_DATABASE_URL": "sqlite:////nonexistent/x.db"}
    verify = [SCRIPT, "evidence", "verify", str(tmp_path / "b.tar"), "--key",
              str(tmp_path / "signing.pub"), "--vkey", log_signer.verifier_key]  # fmt: skip
    ok = subprocess.run(verify, capture_output=True, text=True, env=offline, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "reports/daily@1" in ok.stdout and "run-42" in ok.stdout
    data = bytearray((tmp_path / "b.tar").read_bytes())
    index = data.find(b"a,b\n1,2\n")
    data[index + 6] = ord("3")
    (tmp_path / "b.tar").write_bytes(bytes(data))
    bad = subprocess.run(verify, capture_output=True, text=True, env=offline, check=False)
    assert bad.returncode == 1
    assert "files/summary.csv is not the registered file" in bad.stderr


def test_large_files_are_copied_in_the_kernel_and_checked_on_the_way(
    store: ArtifactStore, signer: CryptoSigner, log_signer: NoteSigner, tmp_path: Path
) -> None:
    """Files of 8 MiB and more take the kernel-copy path, into a directory or at their
    offset inside the tar; a stored blob corrupted on disk stops the export, leaving
    nothing behind."""
    store.log_signer = log_signer
    big = bytes(range(256)) * (9 * 4096) + b"tail"
    store.put("big/one", {"a.bin": big, "b.txt": b"small", "c.bin": big[::-1]})
    store.export_evidence("big/one", tmp_path / "dir", signer=signer)
    store.export_evidence("big/one", tmp_path / "b.tar", signer=signer)
    for form in ("dir", "b.tar"):
        assert _verify(tmp_path / form, signer, log_signer)["size"] == 2 * len(big) + 5
    assert (tmp_path / "dir/files/c.bin").read_bytes() == big[::-1]

    package = store.describe("big/one")
    blob = store.blobs.path(package.file("a.bin").blob.blake3)  # type: ignore[attr-defined]
    blob.chmod(0o644)
    with open(blob, "r+b") as file:
        file.seek(5 << 20)
        file.write(b"X")
    for target in ("dir2", "c.tar"):
        with pytest.raises(IntegrityError, match=r"a\.bin.*the stored bytes hash to"):
            store.export_evidence("big/one", tmp_path / target, signer=signer)
    left = {p.name for p in tmp_path.iterdir()} - {"blobs", "b.tar", "dir"}
    assert not {name for name in left if not name.startswith("registry.db")}, left
