"""``examples/evidence_bundle.py`` runs as written and proves what it says."""

from __future__ import annotations

from pathlib import Path

import pytest

from examples import evidence_bundle

pytestmark = pytest.mark.integration


def test_the_evidence_example_verifies_and_refuses_the_tampered_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = evidence_bundle.main(tmp_path)
    assert report["package"] == "reports/daily@1"
    assert report["run_id"] == "run-2026-12-02"
    assert report["inputs"] == ["evidence/raw_logs@1", "git commit " + "9f" * 20]
    out = capsys.readouterr().out
    assert "tampered bundle refused: files/summary.csv is not the registered file" in out
