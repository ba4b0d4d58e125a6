"""``artifactstore keys generate|show`` and ``artifactstore evidence statement``, run as
the console script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from artifactstore_core import ArtifactStore
from artifactstore_core.cli import EXIT_BAD_INPUT
from artifactstore_core.domain.checkpoint import NoteVerifier
from artifactstore_core.evidence.keys import load_public_key, verifier_key
from artifactstore_core.evidence.statements import statement_for
from tests.cli.test_cli import Cli

pytestmark = pytest.mark.integration


@pytest.fixture
def sqlite_cli(tmp_path: Path) -> Cli:
    return Cli(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "blobs", tmp_path)


def test_keys_generate_and_show(sqlite_cli: Cli, tmp_path: Path) -> None:
    generated = sqlite_cli.json("keys", "generate", "release")
    assert isinstance(generated, dict)
    key = load_public_key(tmp_path / "release.pub")
    assert (generated["private_key"], generated["public_key"]) == ("release.key", "release.pub")
    assert (generated["keyid"], generated["keytype"]) == (key.keyid, "ed25519")
    before = (tmp_path / "release.key").read_bytes()
    again = sqlite_cli("keys", "generate", "release", expect=EXIT_BAD_INPUT)
    assert again.stderr == "error: 'release.key' already exists; keys are never overwritten\n"
    assert (tmp_path / "release.key").read_bytes() == before

    for keyfile in ("release.key", "release.pub"):
        shown = sqlite_cli.json("keys", "show", keyfile, "--origin", "reg.example/log")
        assert isinstance(shown, dict)
        assert shown["keyid"] == key.keyid
        assert shown["public_key_pem"] == (tmp_path / "release.pub").read_text()
        assert shown["verifier_key"] == verifier_key("reg.example/log", key)
        assert NoteVerifier.parse(shown["verifier_key"]).name == "reg.example/log"
    text = sqlite_cli("keys", "show", "release.pub").stdout
    assert f"keyid: {key.keyid}\n" in text and "verifier_key" not in text
    missing = sqlite_cli("keys", "show", "nope.pub", expect=EXIT_BAD_INPUT)
    assert missing.stderr == "error: key file 'nope.pub' does not exist\n"
    bad_origin = sqlite_cli("keys", "show", "release.pub", "--origin", "a b", expect=2)
    assert "invalid key name 'a b'" in bad_origin.stderr


def test_evidence_statement(sqlite_cli: Cli, tmp_path: Path) -> None:
    cli = sqlite_cli
    with ArtifactStore.open(cli.database_url, str(tmp_path / "blobs")) as store:
        raw = store.put("evidence/raw", {"raw.log": b"x"})
        package = store.put("evidence/summary", {"s.json": b"{}"}, inputs=[raw.reference])
        expected = statement_for(store, package, builder_id="urn:artifactstore:builder:cli-test")
    printed = cli("evidence", "statement", "evidence/summary@1").stdout
    assert printed.encode() == expected + b"\n"  # the canonical bytes
    assert cli.json("evidence", "statement", package.reference) == json.loads(expected)
    other = cli.json("evidence", "statement", str(package.id), "--builder-id", "urn:x")
    assert isinstance(other, dict)
    assert other["predicate"]["runDetails"]["builder"]["id"] == "urn:x"
    unknown = cli("evidence", "statement", "evidence/nope@1", expect=EXIT_BAD_INPUT)
    assert unknown.stderr.startswith("error: no package matches reference 'evidence/nope@1'")
