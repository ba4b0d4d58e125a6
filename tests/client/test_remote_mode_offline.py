"""Remote mode without a server: refusals that never reach the network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from artifactstore_core.errors import ConfigurationError
from artifactstore_dagster import ArtifactStoreResource
from tests.cli.test_cli import SCRIPT

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "command",
    [
        ["migrate"],
        ["views", "rebuild"],
        ["views", "check"],
        ["log", "verify"],
        ["serve"],
    ],
)
def test_commands_without_a_remote_equivalent_exit_2_naming_the_command(
    command: list[str], tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "ARTIFACTSTORE_SERVER_URL": "http://127.0.0.1:9",
        "ARTIFACTSTORE_TOKEN": "t",
        "ARTIFACTSTORE_DATABASE_URL": f"sqlite:///{tmp_path / 'never.db'}",
    }
    result = subprocess.run(
        [SCRIPT, *command], capture_output=True, text=True, env=env, check=False, cwd=tmp_path
    )
    assert result.returncode == 2, result
    name = " ".join(["artifactstore", *command])
    assert result.stderr.startswith(f"error: {name!r} has no remote equivalent"), result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "never.db").exists()  # the database was never opened


def test_an_unreachable_server_is_one_line_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [SCRIPT, "--server", "http://127.0.0.1:9", "show", "x"],
        capture_output=True, text=True, env={**os.environ}, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("error: artifact-store server http://127.0.0.1:9 failed")
    assert result.stderr.count("\n") == 1


def test_the_resource_refuses_a_server_and_a_database_together(tmp_path: Path) -> None:
    resource = ArtifactStoreResource(
        url="http://127.0.0.1:9", token="t", database_url=f"sqlite:///{tmp_path / 'r.db'}"
    )
    with pytest.raises(ConfigurationError, match=r"either url .* or database_url"):
        resource.get_store()


def test_without_httpx_the_client_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['httpx'] = None\n"
        "from artifactstore_core.client import RemoteArtifactStore\n"
        "RemoteArtifactStore('http://127.0.0.1:9')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert "MissingExtraError: the remote client needs the Python package 'httpx'" in result.stderr
    assert "pip install 'artifact-store[client]'" in result.stderr


def test_from_environment_needs_the_server_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from artifactstore_core.client import from_environment

    monkeypatch.delenv("ARTIFACTSTORE_SERVER_URL", raising=False)
    with pytest.raises(ConfigurationError, match="ARTIFACTSTORE_SERVER_URL is not set"):
        from_environment()
    monkeypatch.setenv("ARTIFACTSTORE_SERVER_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("ARTIFACTSTORE_TOKEN", "asr_secret")
    with from_environment() as client:
        assert client.url == "http://127.0.0.1:9"
        assert client.transport.client.headers["Authorization"] == "Bearer asr_secret"


def test_tier_planning_is_refused_remotely_without_a_request() -> None:
    from artifactstore_core.client import RemoteArtifactStore, RetryPolicy

    client = RemoteArtifactStore("http://127.0.0.1:9", "t", retry=RetryPolicy(attempts=1))
    with client, pytest.raises(ConfigurationError, match="tier 'cold' needs the registry's"):
        client.plan_tier_moves("cold")
