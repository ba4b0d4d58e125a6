"""The system calls of a child process, traced with ``strace``, for tests of the order in
which bytes are written, synced and renamed."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

STRACE = shutil.which("strace")
_CALL = re.compile(r"^(\d+) +(\w+)\((.*?)(?: <unfinished \.\.\.>|\) += (-?\d+).*)$")
_RESUMED = re.compile(r"^(\d+) +<\.\.\. (\w+) resumed>.*\) += (-?\d+)")


@dataclass(frozen=True)
class Call:
    """A completed system call: its name, arguments (fds shown as ``N</path>``), result."""

    name: str
    args: str
    result: int


def traced(argv: Sequence[str], calls: str, log: Path) -> list[Call]:
    """The completed ``calls`` (``strace -e trace=`` syntax, which must include ``write``)
    of ``argv`` and its threads, in order of completion, between the child's last two
    writes to stderr (the marks around the work under test)."""
    assert STRACE is not None, "strace is needed to see the order of system calls"
    subprocess.run(
        [STRACE, "-f", "-y", "-s", "0", "-e", f"trace={calls}", "-o", str(log), *argv],
        check=True, capture_output=True,
    )  # fmt: skip
    done: list[Call] = []
    pending: dict[str, tuple[str, str]] = {}
    for line in log.read_text().splitlines():
        if match := _CALL.match(line):
            pid, name, args, result = match.groups()
            if result is None:
                pending[pid] = (name, args)
            else:
                done.append(Call(name, args, int(result)))
        elif match := _RESUMED.match(line):
            pid, name, result = match.groups()
            started, args = pending.pop(pid)
            assert started == name, line
            done.append(Call(name, args, int(result)))
    marks = [i for i, c in enumerate(done) if c.name == "write" and c.args.startswith("2<")]
    return done[marks[-2] : marks[-1]]
