"""Export planning and the file/directory clash check: pure, property-tested."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from artifactstore_core.domain.manifest import FileEntry, check_no_path_clashes
from artifactstore_core.errors import InvalidInputError
from artifactstore_core.export import plan_export
from artifactstore_core.hashing import BlobHash, Digest

pytestmark = pytest.mark.unit

SEGMENT = st.sampled_from(["a", "b", "a-b", "a.b", "b0"])
PATHS = st.sets(st.lists(SEGMENT, min_size=1, max_size=4).map("/".join), min_size=1, max_size=8)
BLOB = BlobHash(Digest("blake3", "0" * 64), Digest("sha256", "0" * 64), 0)


def clashing(paths: set[str]) -> bool:
    return any(q.startswith(p + "/") for p in paths for q in paths)


@given(PATHS)
def test_a_clash_is_refused_exactly_when_a_path_is_a_directory_of_another(
    paths: set[str],
) -> None:
    if not clashing(paths):
        check_no_path_clashes(paths)
        return
    with pytest.raises(InvalidInputError, match="clash") as caught:
        check_no_path_clashes(paths)
    named = [p for p in paths if repr(p) in str(caught.value)]
    assert any(clashing({p, q}) for p in named for q in named)


@given(PATHS)
def test_plan_lists_every_directory_after_its_parent(paths: set[str]) -> None:
    entries = [FileEntry(path, BLOB) for path in paths]
    if clashing(paths):
        with pytest.raises(InvalidInputError, match="cannot be exported"):
            plan_export(entries, "p@1")
        return
    plan = plan_export(entries, "p@1")
    assert [e.path for e in plan.files] == sorted(paths)
    wanted = {p.rsplit("/", 1)[0] for p in paths if "/" in p}
    assert set(plan.directories) >= wanted
    for index, directory in enumerate(plan.directories):
        if "/" in directory:
            assert directory.rsplit("/", 1)[0] in plan.directories[:index]
