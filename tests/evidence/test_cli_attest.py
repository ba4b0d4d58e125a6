"""``artifactstore evidence attest|attestations`` and ``show`` of attested packages, run as
the console script: exit 2 on bad input (nothing recorded), the attestation verifies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from artifactstore_core import ArtifactStore
from artifactstore_core.cli import EXIT_BAD_INPUT
from artifactstore_core.evidence.dsse import verify_envelope
from artifactstore_core.evidence.keys import generate_keypair, load_public_key
from tests.cli.test_cli import Cli

pytestmark = pytest.mark.integration


@pytest.fixture
def sqlite_cli(tmp_path: Path) -> Cli:
    return Cli(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "blobs", tmp_path)


def test_attest_list_and_show(sqlite_cli: Cli, tmp_path: Path) -> None:
    cli = sqlite_cli
    generate_keypair(tmp_path / "signing")
    key = load_public_key(tmp_path / "signing.pub")
    with ArtifactStore.open(cli.database_url, str(tmp_path / "blobs")) as store:
        store.put("reports/daily", {"summary.csv": b"rows"})
    made = cli.json("evidence", "attest", "reports/daily@1", "--key", "signing.key")
    assert isinstance(made, dict)
    assert (made["reference"], made["kind"]) == (".attestations/reports/daily/1@1", "attestation")
    assert made["attests"] == "reports/daily@1"
    text = cli("evidence", "attest", "reports/daily", "--key", "signing.key").stdout
    assert text == (
        f"attested reports/daily@1 as .attestations/reports/daily/1@2 (key {key.keyid})\n"
    )
    listed = cli.json("evidence", "attestations", "reports/daily@1")
    assert [a["reference"] for a in listed] == [  # type: ignore[union-attr]
        ".attestations/reports/daily/1@1", ".attestations/reports/daily/1@2",
    ]  # fmt: skip
    table = cli("evidence", "attestations", "reports/daily@1").stdout
    assert ".attestations/reports/daily/1@2  active" in table and key.keyid in table
    shown = _rows(cli("show", "reports/daily@1").stdout)
    assert shown["attestations"] == (
        ".attestations/reports/daily/1@1, .attestations/reports/daily/1@2"
    )
    assert _rows(cli("show", ".attestations/reports/daily/1@1").stdout)["attests"] == (
        "reports/daily@1"
    )
    cli("get", ".attestations/reports/daily/1@1", "out")
    envelope = (tmp_path / "out" / "reports" / "daily@1.intoto.jsonl").read_bytes()
    payload = verify_envelope(envelope.strip(), [key]).payload
    assert json.loads(payload)["subject"][0]["name"] == "reports/daily@1"


def _rows(text: str) -> dict[str, str]:
    """The ``key  value`` rows ``show`` prints above the file table."""
    rows = [line.split(None, 1) for line in text.split("\n\n")[0].splitlines()]
    return {row[0]: row[1] for row in rows if len(row) == 2}


def test_bad_input_records_nothing(sqlite_cli: Cli, tmp_path: Path) -> None:
    cli = sqlite_cli
    with ArtifactStore.open(cli.database_url, str(tmp_path / "blobs")) as store:
        store.put("reports/daily", {"summary.csv": b"rows"})
        before = len(store.events())
    missing = cli("evidence", "attest", "reports/daily@1", "--key", "nope.key", expect=2)
    assert missing.stderr == "error: key file 'nope.key' does not exist\n"
    generate_keypair(tmp_path / "signing")
    unknown = cli("evidence", "attest", "reports/other", "--key", "signing.key", expect=2)
    assert unknown.stderr.startswith("error: no package matches reference 'reports/other'")
    cli("evidence", "attestations", "reports/other", expect=EXIT_BAD_INPUT)
    with ArtifactStore.open(cli.database_url, str(tmp_path / "blobs")) as store:
        assert len(store.events()) == before
