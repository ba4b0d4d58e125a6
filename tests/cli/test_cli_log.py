"""``artifactstore log checkpoint|prove|consistency|verify-proof`` as a user runs them:
a log key from the environment, proofs written to files and verified with no registry,
and exit 1 naming what failed when a proof, a checkpoint or the log itself was altered."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from artifactstore_core.domain.checkpoint import NoteSigner
from artifactstore_core.schema import events
from tests.cli.test_cli import Cli

ORIGIN = "artifacts.example.org/ci"


@pytest.fixture
def keyed(database_url: str, tmp_path: Path) -> tuple[Cli, str]:
    """The CLI with a log key configured, and the log's verifier key."""
    cli = Cli(database_url, tmp_path / "blobs", tmp_path)
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "log.key"
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    cli.env |= {"ARTIFACTSTORE_LOG_KEY": str(path), "ARTIFACTSTORE_LOG_ORIGIN": ORIGIN}
    return cli, NoteSigner(ORIGIN, key).verifier_key


def test_checkpoint_prove_and_verify_offline(keyed: tuple[Cli, str], tmp_path: Path) -> None:
    cli, vkey = keyed
    (tmp_path / "r.csv").write_text("a\n")
    cli("put", "reports/day", str(tmp_path / "r.csv"))
    first = cli.json("log", "checkpoint")
    assert first["origin"] == ORIGIN and first["size"] > 0
    (tmp_path / "old.checkpoint").write_text(first["note"])
    cli("put", "reports/day", str(tmp_path / "r.csv"), "--kind", "report")
    cli("log", "prove", "--package", "reports/day@1", "--out", str(tmp_path / "p.tlog-proof"))
    (tmp_path / "vkey").write_text(vkey)

    offline = Cli("sqlite:////nonexistent/none.db", tmp_path / "none", tmp_path)
    out = offline("log", "verify-proof", "p.tlog-proof", "--vkey", "vkey").stdout
    assert "PackageRegistered" in out and f"is in the log {ORIGIN}" in out

    result = cli.json("log", "consistency", "old.checkpoint", "--vkey", vkey)
    assert result["ok"] and result["old_size"] == first["size"] < result["new"]["size"]

    text = (tmp_path / "p.tlog-proof").read_text().split("\n")
    text[3] = "A" * 43 + "="  # the first hash of the path
    (tmp_path / "bad.tlog-proof").write_text("\n".join(text))
    failed = offline("log", "verify-proof", "bad.tlog-proof", "--vkey", "vkey", expect=1)
    assert "does not lead to the root" in failed.stderr
    stranger = NoteSigner(ORIGIN, Ed25519PrivateKey.generate()).verifier_key
    failed = offline("log", "verify-proof", "p.tlog-proof", "--vkey", stranger, expect=1)
    assert "signature" in failed.stderr
    failed = offline("log", "verify-proof", "p.tlog-proof", "--vkey", "not-a-key", expect=2)
    assert "invalid verifier key" in failed.stderr


def test_a_truncated_log_exits_1_and_signs_nothing(keyed: tuple[Cli, str], tmp_path: Path) -> None:
    cli, vkey = keyed
    (tmp_path / "r.csv").write_text("a\n")
    for _ in range(3):
        cli("put", "reports/day", str(tmp_path / "r.csv"))
    cli("log", "checkpoint", "--out", str(tmp_path / "old.checkpoint"))
    engine = sa.create_engine(cli.database_url)
    with engine.begin() as conn:
        head = conn.execute(sa.select(sa.func.max(events.c.sequence))).scalar()
        conn.execute(sa.delete(events).where(events.c.sequence == head))
    engine.dispose()
    for args in (("log", "checkpoint"), ("log", "verify"),
                 ("log", "consistency", "old.checkpoint", "--vkey", vkey)):  # fmt: skip
        failed = cli(*args, expect=1)
        assert "its tail was removed" in failed.stderr, args
    assert cli.json("log", "checkpoint", "--latest")["size"] == head
