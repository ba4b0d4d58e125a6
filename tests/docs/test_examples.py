"""The Python examples of the README run as written (eventsourcing's docs tests habit).

Each ```python block runs in a fresh interpreter, in an empty directory with the
``ARTIFACTSTORE_*`` settings pointing inside it and a ``logs/`` directory for the
examples to store. ``docs/*.md`` blocks run too when their document is listed in
``SELF_CONTAINED``; the others (``docs/dagster.md`` shows pieces of a user's Dagster
project) are only compiled.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SELF_CONTAINED = ("README.md",)
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _blocks(document: str) -> list[tuple[str, str]]:
    """``(id, code)`` of each Python block of ``document``, the id naming its line."""
    text = (ROOT / document).read_text(encoding="utf-8")
    return [
        (f"{document}:{text.count(chr(10), 0, match.start()) + 1}", match.group(1))
        for match in _BLOCK.finditer(text)
    ]


def _all_blocks() -> list[tuple[str, str]]:
    documents = ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]
    return [block for document in documents for block in _blocks(document)]


EXECUTED = [block for document in SELF_CONTAINED for block in _blocks(document)]


def test_the_readme_has_examples() -> None:
    assert len(EXECUTED) >= 1


@pytest.mark.parametrize(("where", "code"), EXECUTED, ids=[where for where, _ in EXECUTED])
def test_example_runs(where: str, code: str, tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "app.log").write_text("2026-11-25 12:00:00 started\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACTSTORE_")}
    env |= {
        "ARTIFACTSTORE_DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'settings.db'}",
        "ARTIFACTSTORE_STORAGE_URL": str(tmp_path / "var" / "settings-blobs"),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{where} failed:\n{done.stderr}"


@pytest.mark.parametrize(
    ("where", "code"), _all_blocks(), ids=[where for where, _ in _all_blocks()]
)
def test_example_compiles(where: str, code: str) -> None:
    compile(code, where, "exec")
