"""What an IO manager remembers while it runs: step inputs, run outputs, scratch space.

Lifetime: one ``Tracking`` belongs to one ``ArtifactStoreIOManager`` object. Dagster sets
up a fresh copy of a configured IO manager for each run (the in-process executor: one
copy for every step of the run; the multiprocess executor: one per step process) and
tears it down when the run (or step process) ends, which calls ``close()``: the memory
is dropped and the scratch directory it created is removed. An IO manager used directly
(``build_output_context``) keeps its ``Tracking`` as long as it lives; its temporary
directory goes when the object is collected, or at exit.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from artifactstore_core.domain.package import Package
from artifactstore_dagster.translator import LoadedInput

AssetPartition = tuple[tuple[str, ...], str | None]


class Tracking:
    """Step inputs, run outputs and scratch space of one IO manager object (thread-safe).

    - step inputs: the packages each (run, step) loaded, recorded as the provenance inputs
      of what that step stores. A step loads its inputs and handles its outputs in one
      process with one IO manager, whichever executor runs it, so this is complete;
    - run outputs: the package each (run, asset, partition) was stored as, so a later step
      of the same run reads it without a lookup in Dagster's event log;
    - scratch: where loaded file and directory packages are exported;
    - keep rules: the selectors already made sure of (one registry query per asset).

    Both maps are bounded (oldest entries go first), for IO managers that live long.
    """

    def __init__(self, *, max_steps: int = 4096, max_outputs: int = 16384) -> None:
        self._inputs: OrderedDict[tuple[str, str], list[LoadedInput]] = OrderedDict()
        self._outputs: OrderedDict[tuple[str, AssetPartition], Package] = OrderedDict()
        self._max_steps = max_steps
        self._max_outputs = max_outputs
        self._kept: set[str] = set()
        self._lock = threading.Lock()
        self._temporary: Path | None = None
        self._cleanup: Callable[[], object] | None = None  # a weakref.finalize

    def add_input(self, run_id: str, step_key: str, loaded: LoadedInput) -> None:
        """Remember that the step loaded a package (once per package)."""
        with self._lock:
            items = self._inputs.setdefault((run_id, step_key), [])
            self._inputs.move_to_end((run_id, step_key))
            if all(i.package_id != loaded.package_id for i in items):
                items.append(loaded)
            while len(self._inputs) > self._max_steps:
                self._inputs.popitem(last=False)

    def inputs(self, run_id: str, step_key: str) -> list[LoadedInput]:
        """The packages the step loaded so far, in load order."""
        with self._lock:
            return list(self._inputs.get((run_id, step_key), ()))

    def add_output(self, run_id: str, where: AssetPartition, package: Package) -> None:
        """Remember the package the run stored for an asset (partition)."""
        with self._lock:
            self._outputs[(run_id, where)] = package
            while len(self._outputs) > self._max_outputs:
                self._outputs.popitem(last=False)

    def output(self, run_id: str, where: AssetPartition) -> Package | None:
        """The package this run stored for an asset (partition), if it did here."""
        with self._lock:
            return self._outputs.get((run_id, where))

    def kept(self, selector: str) -> bool:
        """Whether keep rule ``selector`` was already made sure of."""
        with self._lock:
            return selector in self._kept

    def mark_kept(self, selector: str) -> None:
        with self._lock:
            self._kept.add(selector)

    def scratch_dir(self, configured: str | None) -> Path:
        """A new empty directory for one export: under ``configured`` (kept), else under
        a temporary directory this object owns (removed by ``close``)."""
        if configured:
            root = Path(configured)
            root.mkdir(parents=True, exist_ok=True)
        else:
            with self._lock:
                if self._temporary is None:
                    self._temporary = Path(tempfile.mkdtemp(prefix="artifactstore-dagster-"))
                    self._cleanup = weakref.finalize(
                        self, shutil.rmtree, self._temporary, ignore_errors=True
                    )
                root = self._temporary
        return Path(tempfile.mkdtemp(prefix="package-", dir=root))

    def close(self) -> None:
        """Forget everything and remove the temporary scratch directory (reusable after)."""
        with self._lock:
            self._inputs.clear()
            self._outputs.clear()
            self._kept.clear()
            cleanup, self._cleanup, self._temporary = self._cleanup, None, None
        if cleanup is not None:
            cleanup()
