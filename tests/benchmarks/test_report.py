"""``benchmarks/report.py`` turns results files (as ``_common.write_results`` writes them)
into Markdown tables and PNG plots: every figure in the report comes from a file."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def _script(name: str) -> ModuleType:
    path = ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _common() -> ModuleType:
    return _script("_common")


def _report(results: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/report.py"), "--results", str(results),
         "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Two small results files: peers (ratios) and scale (sizes, latencies, checks)."""
    common, directory = _common(), tmp_path / "results"
    peers = [
        common.result_row("1 GiB file", "dvc add", "s", [5.0, 6.0, 7.0]),
        common.result_row("1 GiB file", "artifactstore put", "s", [1.0, 1.5, 2.8],
                          ratio_to="dvc add", ratios=[0.2, 0.25, 0.4]),
    ]  # fmt: skip
    common.write_results("bench_peers", peers, [("put <= 1.0x dvc add", True)], False, directory)
    scale = [
        common.result_row(f"verify, {size} B files", "ArtifactStore.verify()", "MB/s",
                          [rate, rate * 1.1], ratio_to="hashlib.sha256", ratios=[3.0, 4.0],
                          size=size)
        for size, rate in ((1024, 2.0), (1 << 20, 150.0), (1 << 26, 330.0))
    ] + [
        common.result_row("1,000,000 packages, SQLite", "show ID", "ms", [3.0, 4.0, 61.5],
                          p50=4.0, p99=61.5, target=50.0),
    ]  # fmt: skip
    checks = [("show ID p99 61.5 ms < 50 ms", False)]
    common.write_results("bench_scale", scale, checks, True, directory)
    return directory


def test_report_writes_tables_and_plots_from_results(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "performance"
    done = _report(results, out)
    assert done.returncode == 0, done.stderr
    index = (out / "README.md").read_text()
    # A table row per result row, with its median, spread and ratio with the ratio's spread.
    assert "| 1 GiB file | artifactstore put | 1.5 | 1-2.8 | s | 0.25x (0.2-0.4) dvc add |" in index
    assert "| 1,000,000 packages, SQLite | show ID | 4 | 3-61.5 | ms | 4 | 61.5 |  |" in index
    assert "- **missed**: show ID p99 61.5 ms < 50 ms" in index
    assert "with `--quick` (indicative only)" in index
    plots = {
        "headline.png", "bench_peers-ratios.png", "bench_scale-ratios.png",
        "bench_scale-throughput.png", "bench_scale-latency.png",
    }  # fmt: skip
    assert {path.name for path in out.glob("*.png")} == plots
    for name in plots:
        assert (out / name).read_bytes().startswith(PNG)
        assert f"]({name})" in index


def test_results_file_has_the_shared_shape(results: Path) -> None:
    document = json.loads((results / "bench_peers.json").read_text())
    assert document["benchmark"] == "bench_peers"
    assert document["version"] == 1
    assert document["quick"] is False
    assert set(document["machine"]) == {"cores", "python", "platform"}
    row = document["rows"][1]
    assert row["median"] == 1.5 and (row["min"], row["max"]) == (1.0, 2.8)
    assert (row["ratio"], row["ratio_min"], row["ratio_max"]) == (0.25, 0.2, 0.4)
    assert document["checks"] == [{"target": "put <= 1.0x dvc add", "ok": True}]


def test_headline_without_peers_is_the_marked_rows(results: Path, tmp_path: Path) -> None:
    (results / "bench_peers.json").unlink()
    out = tmp_path / "performance"
    assert _report(results, out).returncode == 0
    assert not (out / "headline.png").exists()  # nothing marked: no headline
    common = _common()
    row = common.result_row("1 GiB file", "put", "s", [1.0], ratio_to="sha256", ratios=[1.1])
    common.write_results("bench_put_large", [row | {"headline": True}], [], False, results)
    assert _report(results, out).returncode == 0
    assert (out / "headline.png").read_bytes().startswith(PNG)


def test_plots_show_speed_so_above_one_is_faster() -> None:
    speed = _script("report").speed
    time_row = {"unit": "s", "ratio": 0.5, "ratio_min": 0.25, "ratio_max": 1.0}
    assert speed(time_row) == (2.0, 1.0, 4.0)
    rate_row = {"unit": "MB/s", "ratio": 0.5, "ratio_min": 0.25, "ratio_max": 1.0}
    assert speed(rate_row) == (0.5, 0.25, 1.0)


def test_report_refuses_an_empty_results_directory(tmp_path: Path) -> None:
    done = _report(tmp_path, tmp_path / "out")
    assert done.returncode != 0
    assert f"no results in {tmp_path}" in done.stderr
