"""Evidence routes over both store flavours: checkpoints, consistency and inclusion
proofs, statements, attestations and offline bundles, with their scopes and problems."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import SSlibKey

from artifactstore_core import ArtifactStore, Settings
from artifactstore_core.cli import cli
from artifactstore_core.client import RemoteArtifactStore
from artifactstore_core.client import _evidence as client_evidence
from artifactstore_core.domain import merkle
from artifactstore_core.domain.checkpoint import Checkpoint, NoteSigner, NoteVerifier
from artifactstore_core.domain.events import PackageRetrieved
from artifactstore_core.domain.tlog_proof import TlogProof
from artifactstore_core.errors import (
    CheckpointError,
    EvidenceError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
)
from artifactstore_core.eventlog.chain import split_chain_input
from artifactstore_core.evidence.attest import DsseAttestor
from artifactstore_core.evidence.bundle import verify_bundle
from artifactstore_core.evidence.dsse import verify_envelope
from artifactstore_core.evidence.keys import generate_keypair, load_public_key, load_signer
from artifactstore_core.evidence.statements import statement_for
from artifactstore_core.schema import events
from tests.http.conftest import LiveServer, assert_problem, issue_token, live_server

pytestmark = pytest.mark.integration

ORIGIN = "registry.example/prod"
REF = "reports%2Fdaily@1"
#: Reads the report and its input (statements name inputs: their readers must read both).
READER = ("package:reports/**:read", "package:raw/**:read")


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, SSlibKey]:
    """The server's attestation signing key file and its public key."""
    key, public = generate_keypair(tmp_path / "signing")
    return key, load_public_key(public)


def _settings(key: Path | None) -> Settings:
    return Settings(signing_key=str(key) if key else None, log_origin=ORIGIN)  # type: ignore[arg-type]


@pytest.fixture
def server(gateway_store: ArtifactStore, keys: tuple[Path, SSlibKey]) -> Iterator[LiveServer]:
    """A gateway with a log key and an attestation signing key, over a registry with an
    input and a package built from it."""
    gateway_store.log_signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    raw = gateway_store.put("raw/logs", {"a.log": b"lines\n"})
    gateway_store.put(
        "reports/daily", {"summary.csv": b"a,b\n1,2\n"}, inputs=[raw.id],
        provenance={"run_id": "run-42", "code_version": "a" * 40},
    )  # fmt: skip
    with live_server(gateway_store, settings=_settings(keys[0])) as live:
        yield live


def _verifier(store: ArtifactStore) -> NoteVerifier:
    assert store.log_signer is not None
    return NoteVerifier.parse(store.log_signer.verifier_key)


def test_checkpoints_are_signed_by_admins_and_served_as_text(server: LiveServer) -> None:
    store, reader = server.store, issue_token(server.store, "package:**:read")
    with server.client(reader) as client, server.client(issue_token(store)) as admin:
        assert_problem(client.get("/v1/log/checkpoint"), 404, "PACKAGE_UNKNOWN")
        denied = assert_problem(client.post("/v1/log/checkpoint"), 403, "DENIED")
        assert denied["action"] == "admin"
        signed = admin.post("/v1/log/checkpoint")
        assert signed.status_code == 200, signed.text
        assert "cache-control" not in signed.headers
        latest = client.get("/v1/log/checkpoint")
        assert latest.status_code == 200
        assert latest.headers["content-type"] == "text/plain; charset=utf-8"
        assert latest.headers["cache-control"] == "max-age=5"
        assert latest.text == signed.text
        checkpoint = Checkpoint.parse(_verifier(store).verify(latest.text))
        assert checkpoint.size == store.verify_log().head_sequence
        as_json = client.get("/v1/log/checkpoint", headers={"Accept": "application/json"})
        assert as_json.json()["note"] == latest.text
        assert as_json.json()["size"] == checkpoint.size


def test_consistency_proofs_from_a_size_or_an_old_note(server: LiveServer) -> None:
    store = server.store
    old = store.checkpoint()
    for i in range(5):
        store.put(f"more/p{i}", {"x": str(i).encode()})
    with server.client(issue_token(store, "package:raw/**:read")) as client:
        by_note = client.post("/v1/log/consistency", content=old.note)
        assert by_note.status_code == 200, by_note.text
        by_size = client.get("/v1/log/consistency", params={"from": old.checkpoint.size})
        assert by_size.status_code == 200, by_size.text
        for body in (by_note.json(), by_size.json()):
            new = Checkpoint.parse(_verifier(store).verify(body["new"]["note"]))
            assert new.size == store.verify_log().head_sequence > old.checkpoint.size
            proof = [base64.b64decode(node) for node in body["proof"]]
            assert body["old_size"] == old.checkpoint.size
            assert merkle.verify_consistency(
                old.checkpoint.size, new.size, old.checkpoint.root, new.root, proof
            )
        forged = old.note.replace(f"\n{old.checkpoint.size}\n", f"\n{old.checkpoint.size - 1}\n")
        bad = assert_problem(client.post("/v1/log/consistency", content=forged), 422,
                             "CHECKPOINT_INVALID")  # fmt: skip
        assert "signature" in bad["detail"]
        too_far = client.get("/v1/log/consistency", params={"from": 10_000})
        assert "10000" in assert_problem(too_far, 400, "INVALID_INPUT")["detail"]


def test_a_truncated_log_is_refused_as_tampered(server: LiveServer) -> None:
    store = server.store
    old = store.checkpoint()
    with store.engine.begin() as conn:
        conn.execute(sa.delete(events).where(events.c.sequence > old.checkpoint.size - 2))
    with server.client(issue_token(store)) as client:
        for response in (
            client.post("/v1/log/checkpoint"),
            client.post("/v1/log/consistency", content=old.note),
            client.get("/v1/log/consistency", params={"from": 1}),
        ):
            assert "tail was removed" in assert_problem(response, 500, "LOG_TAMPERED")["detail"]
    assert store.latest_checkpoint() == old


def test_without_a_log_key_signing_is_unsupported(sqlite_store: ArtifactStore) -> None:
    sqlite_store.put("a/b", {"x": b"x"})
    with live_server(sqlite_store) as live, live.client(issue_token(sqlite_store)) as client:
        detail = assert_problem(client.post("/v1/log/checkpoint"), 501, "UNSUPPORTED")["detail"]
        assert "ARTIFACTSTORE_LOG_KEY" in detail
        note = NoteSigner(ORIGIN, Ed25519PrivateKey.generate()).sign("x\n1\n" + "A" * 43 + "=\n")
        assert_problem(client.post("/v1/log/consistency", content=note), 501, "UNSUPPORTED")


def test_package_proofs_statements_and_event_proofs(server: LiveServer) -> None:
    store = server.store
    package = store.describe("reports/daily@1")
    with (
        server.client(issue_token(store, *READER)) as client,
        server.client(issue_token(store)) as admin,
    ):
        response = client.get(f"/v1/packages/{REF}/proof")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        proof = TlogProof.parse(response.text)
        checkpoint = proof.verify(_verifier(store))
        fields = split_chain_input(proof.extra or b"")
        assert fields["event_type"] == "PackageRegistered"
        assert fields["subject_id"] == str(package.id)
        assert checkpoint.size == store.verify_log().head_sequence

        statement = client.get(f"/v1/packages/{REF}/statement")
        assert statement.headers["content-type"] == "application/vnd.in-toto+json"
        assert statement.content == statement_for(store, package, settings=_settings(None))

        sequence = int(fields["sequence"])
        denied = assert_problem(client.get(f"/v1/log/events/{sequence}/proof"), 403, "DENIED")
        assert denied["action"] == "admin"
        event = admin.get(f"/v1/log/events/{sequence}/proof")
        assert TlogProof.parse(event.text).index == proof.index
        assert_problem(admin.get("/v1/log/events/99999/proof"), 400, "INVALID_INPUT")


def test_attesting_needs_the_attest_scope_and_signs_with_the_server_key(
    server: LiveServer, keys: tuple[Path, SSlibKey]
) -> None:
    store = server.store
    reader = issue_token(store, *READER)
    attester = issue_token(store, "package:reports/**:read,attest", actor="bob")
    with server.client(reader) as client, server.client(attester) as signer:
        assert client.get(f"/v1/packages/{REF}/attestations").json() == {
            "items": [], "next": None,
        }  # fmt: skip
        denied = assert_problem(client.post(f"/v1/packages/{REF}/attestations"), 403, "DENIED")
        assert denied["action"] == "attest"
        created = signer.post(f"/v1/packages/{REF}/attestations")
        assert created.status_code == 201, created.text
        assert created.json()["kind"] == "attestation"
        assert created.json()["actor"] == "bob"
        assert created.headers["location"].startswith("/v1/packages/.attestations%2F")
        listed = client.get(f"/v1/packages/{REF}/attestations").json()["items"]
        assert [item["id"] for item in listed] == [created.json()["id"]]
    (envelope,) = store.attestation_envelopes("reports/daily@1")
    verified = verify_envelope(envelope, [keys[1]])
    assert verified.payload == statement_for(store, "reports/daily@1", settings=_settings(None))


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive if m.isfile()}  # type: ignore[union-attr]


def test_the_evidence_bundle_streams_as_a_tar_and_verifies_offline(
    server: LiveServer, keys: tuple[Path, SSlibKey], tmp_path: Path
) -> None:
    store = server.store
    with server.client(issue_token(store, *READER)) as client:
        response = client.get(f"/v1/packages/{REF}/evidence")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-tar"
    assert int(response.headers["content-length"]) == len(response.content)
    assert "reports_daily@1.evidence.tar" in response.headers["content-disposition"]
    assert _members(response.content)["files/summary.csv"] == b"a,b\n1,2\n"
    (tmp_path / "b.tar").write_bytes(response.content)
    report = verify_bundle(tmp_path / "b.tar", keys=[keys[1]], log_verifier=_verifier(store))
    assert report.package == "reports/daily@1"
    assert report.signed_by == (keys[1].keyid,)
    assert store.attestations("reports/daily@1") == []  # signed for the bundle, not stored


def test_a_token_that_may_not_read_the_name_sees_no_evidence(server: LiveServer) -> None:
    store = server.store
    with server.client(issue_token(store, "package:raw/**:admin")) as client:
        for method, path in (
            ("GET", "proof"), ("GET", "statement"), ("GET", "attestations"),
            ("POST", "attestations"), ("GET", "evidence"),
        ):  # fmt: skip
            response = client.request(method, f"/v1/packages/{REF}/{path}")
            assert_problem(response, 404, "PACKAGE_UNKNOWN")
        assert client.get("/v1/packages/raw%2Flogs@1/proof").status_code == 200
    anonymous_reads = Settings(http_anonymous_read=True)
    with live_server(store, settings=anonymous_reads) as anonymous, anonymous.client() as client:
        assert_problem(client.post(f"/v1/packages/{REF}/attestations"), 401, "UNAUTHORIZED")


def test_without_a_signing_key_attesting_is_unsupported_and_bundles_need_an_attestation(
    sqlite_store: ArtifactStore, keys: tuple[Path, SSlibKey]
) -> None:
    sqlite_store.log_signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    sqlite_store.put("reports/daily", {"summary.csv": b"x"})
    live = live_server(sqlite_store, settings=_settings(None))
    with live as server, server.client(issue_token(sqlite_store)) as client:
        attest = client.post(f"/v1/packages/{REF}/attestations")
        assert "ARTIFACTSTORE_SIGNING_KEY" in assert_problem(attest, 501, "UNSUPPORTED")["detail"]
        refused = assert_problem(client.get(f"/v1/packages/{REF}/evidence"), 409, "CONFLICT")
        assert "reports/daily@1 has no attestation" in refused["detail"]
        attestor = DsseAttestor.from_settings(load_signer(str(keys[0])), _settings(None))
        sqlite_store.attest("reports/daily@1", attestor)
        bundle = client.get(f"/v1/packages/{REF}/evidence")
        assert bundle.status_code == 200, bundle.text
        stored = sqlite_store.attestation_envelopes("reports/daily@1")
        assert _members(bundle.content)["attestations.intoto.jsonl"] == stored[0] + b"\n"


def _open_deleted(size: int) -> list[int]:
    """Deleted files of ``size`` bytes this process (the server runs in a thread of it)
    holds open: an exported bundle being served (names of deleted files are not reliable)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            info = os.stat(f"/proc/self/fd/{fd}")
            if info.st_nlink == 0 and info.st_size == size:
                found.append(int(fd))
    return found


def _eventually(condition: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def server_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The server's temporary directory, for this test alone."""
    directory = tmp_path / "server-tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


def test_the_bundle_file_is_gone_while_it_streams_and_after_a_disconnect_or_failure(
    sqlite_store: ArtifactStore, keys: tuple[Path, SSlibKey], server_temp: Path
) -> None:
    sqlite_store.log_signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    big = os.urandom(64 << 20)  # more than loopback socket buffers hold (36 MiB here)
    package = sqlite_store.put("big/blob", {"big.bin": big})
    live = live_server(sqlite_store, settings=_settings(keys[0]))
    with live as server, server.client(issue_token(sqlite_store)) as client:
        with client.stream("GET", "/v1/packages/big%2Fblob@1/evidence") as response:
            assert response.status_code == 200
            size = int(response.headers["content-length"])
            assert next(response.iter_bytes()) and list(server_temp.iterdir()) == []
        # the client went away mid-stream: no bundle stays open (its last trace)
        assert _eventually(lambda: not _open_deleted(size))
        whole = client.get("/v1/packages/big%2Fblob@1/evidence")
        assert _members(whole.content)["files/big.bin"] == big
        assert list(server_temp.iterdir()) == []
        blob = Path(sqlite_store.uri_of(package).removeprefix("file://"))
        blob.chmod(0o644)
        blob.write_bytes(b"corrupted" + big[9:])
        failed = client.get("/v1/packages/big%2Fblob@1/evidence")
        assert_problem(failed, 500, "INTEGRITY_FAILURE")
        assert list(server_temp.iterdir()) == []


# ---------------------------------------------------------------------------- the client
def test_the_client_gives_the_registrys_evidence(
    server: LiveServer, keys: tuple[Path, SSlibKey], tmp_path: Path
) -> None:
    store = server.store
    verifier = _verifier(store)
    with RemoteArtifactStore(server.url, issue_token(store)) as remote:
        with pytest.raises(NotFoundError, match="no checkpoint"):
            remote.latest_checkpoint()
        signed = remote.checkpoint()
        assert remote.latest_checkpoint() == store.latest_checkpoint() == signed
        with pytest.raises(NotFoundError, match=r"other\.example"):
            remote.latest_checkpoint("other.example")
        proof = remote.prove_package("reports/daily@1")
        assert proof == store.prove_package("reports/daily@1")
        assert remote.prove(proof.index + 1) == proof
        assert proof.verify(verifier).size == signed.checkpoint.size

        store.put("more/x", {"x": b"x"})
        result = remote.prove_consistency(signed.note, verifier)
        assert result.old == signed.checkpoint
        assert result.new.checkpoint.size == store.verify_log().head_sequence
        assert result == store.prove_consistency(signed.note, verifier)
        assert remote.prove_consistency_from(signed.checkpoint.size).proof == result.proof
        stranger = NoteVerifier.parse(NoteSigner(ORIGIN, Ed25519PrivateKey.generate()).verifier_key)
        with pytest.raises(CheckpointError):
            remote.prove_consistency(signed.note, stranger)

        assert remote.statement("reports/daily@1") == statement_for(
            store, "reports/daily@1", settings=_settings(None)
        )
        assert remote.attestations("reports/daily@1") == []
        attestation = remote.attest("reports/daily@1")
        assert remote.attestations("reports/daily@1") == [attestation]
        assert attestation == store.attestations("reports/daily@1")[0]

        out = tmp_path / "out"
        for target in (out / "bundle.tar", out / "bundle"):
            assert remote.export_evidence("reports/daily@1", target) == target
            report = verify_bundle(target, keys=[keys[1]], log_verifier=verifier)
            assert report.package == "reports/daily@1"
            with pytest.raises(InvalidInputError, match="exists"):
                remote.export_evidence("reports/daily@1", target)
        assert (out / "bundle" / "files" / "summary.csv").read_bytes() == b"a,b\n1,2\n"
        assert sorted(p.name for p in out.iterdir()) == ["bundle", "bundle.tar"]


def test_the_client_refuses_a_forked_log_and_unsafe_bundles(
    server: LiveServer, tmp_path: Path
) -> None:
    """A server answering a proof that does not lead from the caller's checkpoint to its
    new one is caught by the client; a bundle with a link in it is not extracted."""
    store = server.store
    signed = store.checkpoint()
    store.put("more/x", {"x": b"x"})
    data = {"old_size": signed.checkpoint.size, "new": store.checkpoint().to_dict(),
            "proof": [base64.b64encode(bytes(32)).decode()]}  # fmt: skip
    with pytest.raises(IntegrityError, match="not consistent"):
        client_evidence.consistency(data, signed.checkpoint)
    hostile = io.BytesIO()
    with tarfile.open(fileobj=hostile, mode="w") as archive:
        link = tarfile.TarInfo("files/escape")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    out = tmp_path / "out"
    out.mkdir()
    (out / "hostile.tar").write_bytes(hostile.getvalue())
    with pytest.raises(EvidenceError, match="files/escape"):
        client_evidence.extract(out / "hostile.tar", out / "bundle")
    assert [p.name for p in out.iterdir()] == ["hostile.tar"]


def test_the_cli_in_remote_mode_proves_and_exports(
    server: LiveServer, keys: tuple[Path, SSlibKey], tmp_path: Path
) -> None:
    store = server.store
    signed = store.checkpoint()
    unset = {k: None for k in os.environ if k.startswith("ARTIFACTSTORE_")}
    token = issue_token(store, *READER)
    env = unset | {"ARTIFACTSTORE_SERVER_URL": server.url, "ARTIFACTSTORE_TOKEN": token}

    def run(*args: str, expect: int = 0) -> Result:
        result = CliRunner().invoke(cli, list(args), env=env)
        assert result.exit_code == expect, (args, result.output, result.exception)
        return result

    assert run("log", "checkpoint", "--latest").stdout == signed.note
    proof = run("log", "prove", "--package", "reports/daily@1").stdout
    assert proof == store.prove_package("reports/daily@1").to_text()
    (tmp_path / "old").write_text(signed.note)
    vkey = _verifier(store)
    assert store.log_signer is not None
    out = run("log", "consistency", str(tmp_path / "old"), "--vkey", store.log_signer.verifier_key)
    assert out.stdout.startswith(f"OK: the checkpoint of size {signed.checkpoint.size}")
    exported = json.loads(run("evidence", "export", "reports/daily@1", str(tmp_path / "b.tar"),
                              "--json").stdout)  # fmt: skip
    assert exported == {"ok": True, "bundle": str(tmp_path / "b.tar")}
    assert verify_bundle(tmp_path / "b.tar", keys=[keys[1]], log_verifier=vkey).files == 1
    store.attest(
        "reports/daily@1", DsseAttestor.from_settings(load_signer(str(keys[0])), Settings())
    )
    listed = json.loads(run("evidence", "attestations", "reports/daily@1", "--json").stdout)
    assert listed == [a.to_dict() for a in store.attestations("reports/daily@1")]
    denied = run("log", "checkpoint", expect=2)  # a read token may not sign (exit 2, as 403)
    assert "admin" in denied.output
    signing = run("evidence", "export", "reports/daily@1", str(tmp_path / "c"), "--sign",
                  str(keys[0]), expect=2)  # fmt: skip
    assert "own key" in signing.output


def test_an_exported_bundle_is_recorded_as_read_by_the_tokens_actor(server: LiveServer) -> None:
    store = server.store
    with server.client(issue_token(store, *READER, actor="carol")) as client:
        assert client.get(f"/v1/packages/{REF}/evidence").status_code == 200
    package = store.describe("reports/daily@1")
    read = [(e.actor, e.event.purpose) for e in store.events(subject_kind="package",
            subject_id=str(package.id)) if isinstance(e.event, PackageRetrieved)]  # fmt: skip
    assert read == [("carol", "evidence export")]


def test_a_reader_of_the_name_gets_its_attestations_envelopes(
    server: LiveServer, keys: tuple[Path, SSlibKey]
) -> None:
    """Attestation packages are named ``.attestations/...``: a token scoped to the
    subject's names reads their envelopes through the subject."""
    store = server.store
    token = issue_token(store, *READER, "package:reports/**:attest")
    with server.client(token) as client, RemoteArtifactStore(server.url, token) as remote:
        assert remote.attestation_envelopes("reports/daily@1") == []
        attestation = remote.attest("reports/daily@1")
        own = client.get(f"/v1/packages/{quote(attestation.reference, safe='')}")
        assert_problem(own, 404, "PACKAGE_UNKNOWN")  # not by its own name
        response = client.get(f"/v1/packages/{REF}/envelopes")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/vnd.in-toto.bundle"
        stored = store.attestation_envelopes("reports/daily@1")
        assert response.content == stored[0] + b"\n"
        assert remote.attestation_envelopes("reports/daily@1") == stored
        assert verify_envelope(stored[0], [keys[1]]).payload == remote.statement("reports/daily@1")
    with server.client(issue_token(store, "package:raw/**:read")) as stranger:
        assert_problem(stranger.get(f"/v1/packages/{REF}/envelopes"), 404, "PACKAGE_UNKNOWN")


def test_statements_naming_inputs_the_token_cannot_read_are_refused(
    server: LiveServer,
) -> None:
    """A statement names its inputs and their digests: a token reading only the report
    got the name of ``raw/logs``, which it may not know exists (the test failed: 200)."""
    store = server.store
    with server.client(issue_token(store, "package:reports/**:read")) as client:
        for route in ("statement", "evidence", "envelopes"):
            problem = assert_problem(client.get(f"/v1/packages/{REF}/{route}"), 403, "DENIED")
            assert "raw/logs" not in str(problem), route
        assert client.get(f"/v1/packages/{REF}/proof").status_code == 200
