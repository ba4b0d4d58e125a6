"""``artifactstore_core`` imports and works with none of the optional extras installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BLOCKED = ("dagster", "dagster_postgres", "dagster_webserver", "psycopg", "psycopg2", "s3fs")

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked extra: {name}")
            return None

    sys.meta_path.insert(0, Block())
    import artifactstore_core, artifactstore_core.schema, artifactstore_core.migrate
    from artifactstore_core.config import create_engine
    from artifactstore_core import migrate
    url = "sqlite:///" + sys.argv[1]
    migrate.upgrade(url)
    import sqlalchemy as sa
    with create_engine(url).connect() as c:
        print(c.execute(sa.text("select count(*) from retention_classes")).scalar())
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print("LOADED", loaded)
    """
)


@pytest.mark.integration
def test_core_works_without_extras(tmp_path: Path) -> None:
    script = f"BLOCKED = {BLOCKED!r}\n{SCRIPT}"
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "r.db")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["5", "LOADED []"]


@pytest.mark.integration
def test_postgres_url_without_driver_names_the_extra(tmp_path: Path) -> None:
    script = (
        f"BLOCKED = {BLOCKED!r}\n"
        + SCRIPT.split("import artifactstore_core,")[0]
        + "from artifactstore_core.config import create_engine\n"
        + "create_engine('postgresql+psycopg://u@127.0.0.1/db')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "pip install 'artifact-store[postgres]'" in result.stderr
