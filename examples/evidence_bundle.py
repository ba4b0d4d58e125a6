"""Evidence from end to end, on the embedded default (SQLite + local files), in a
temporary directory: keys, a package with an input, its signed provenance, a signed log
checkpoint, an offline bundle, and its verification by someone who has only the bundle
and two public keys.

    python -m examples.evidence_bundle
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from artifactstore_core import ArtifactStore, IntegrityError
from artifactstore_core.domain.checkpoint import NoteVerifier
from artifactstore_core.domain.manifest import Provenance
from artifactstore_core.evidence.attest import DsseAttestor
from artifactstore_core.evidence.bundle import verify_bundle
from artifactstore_core.evidence.keys import generate_keypair, load_public_key, load_signer
from artifactstore_core.transparency import load_note_signer

ORIGIN = "artifacts.example.org/demo"


def main(work: Path) -> dict[str, object]:
    (work / "keys").mkdir()
    release_key, release_pub = generate_keypair(work / "keys" / "release")
    log_key, _ = generate_keypair(work / "keys" / "log")
    log_signer = load_note_signer(log_key, ORIGIN)

    # The registry: every sweep and `checkpoint()` signs the log's head with the log key.
    with ArtifactStore.open(
        f"sqlite:///{work / 'registry.db'}", str(work / "blobs"), log_signer=log_signer
    ) as store:
        raw = store.put("evidence/raw_logs", {"app.log": b"12:00 start\n12:01 done\n"})
        store.put(
            "reports/daily",
            {"summary.csv": b"day,errors\n2026-12-02,0\n"},
            kind="report",
            inputs=[raw.id],
            provenance=Provenance(run_id="run-2026-12-02", code_version="9f" * 20),
        )
        store.attest(
            "reports/daily", DsseAttestor(load_signer(str(release_key)), "urn:demo:ci", ORIGIN)
        )
        store.checkpoint()
        bundle = store.export_evidence("reports/daily", work / "daily.tar")
        log_verifier_key = log_signer.verifier_key

    # The auditor: no registry, only the bundle, the release public key and the log's
    # verifier key (published by the registry's operator).
    report = verify_bundle(
        bundle,
        keys=[load_public_key(release_pub)],
        log_verifier=NoteVerifier.parse(log_verifier_key),
    )
    print(f"verified: {report.to_dict()}")

    # One byte changed in the archive: the verification names the file.
    data = bytearray(bundle.read_bytes())
    data[data.find(b"2026-12-02,0")] ^= 1
    (work / "tampered.tar").write_bytes(bytes(data))
    try:
        verify_bundle(
            work / "tampered.tar",
            keys=[load_public_key(release_pub)],
            log_verifier=NoteVerifier.parse(log_verifier_key),
        )
    except IntegrityError as error:
        print(f"tampered bundle refused: {error}")
    return report.to_dict()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        main(Path(directory))
