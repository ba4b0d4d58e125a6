"""A small tmpfs mounted for a test: a real full disk (ENOSPC) or read-only media (EROFS)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def tmpfs(path: Path, *, size: str = "1m", read_only: bool = False) -> Iterator[str | None]:
    """Mount a tmpfs of ``size`` on the empty directory ``path`` for the block (needs root).

    Yields ``None`` once mounted, or the mount command's error when it could not mount
    (the caller decides whether to skip or fall back); unmounts on exit.
    """
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        yield mounted.stderr.strip() or f"mount exited with {mounted.returncode}"
        return
    try:
        yield None
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)
