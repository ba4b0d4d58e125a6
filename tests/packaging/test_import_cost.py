"""Commands that neither sign nor verify do not pay for securesystemslib's signers: its
``signer`` package imports every key-service client it knows (boto3 among them), about
0.3 s of every CLI start-up before (found by the peer benchmark's profile)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("securesystemslib.signer", "boto3")


def test_the_cli_and_the_store_import_no_signer_until_one_is_used() -> None:
    code = (
        "import sys, artifactstore_core.cli, artifactstore_core.store\n"
        "from artifactstore_core import ArtifactStore\n"
        "s = ArtifactStore.open('sqlite://', 'memory://import-cost')\n"
        "s.put('a/b', {'f': b'1'})\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
