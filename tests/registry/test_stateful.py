"""Random command sequences keep the views equal to a replay of the log and the chain valid."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from artifactstore_core import ArtifactStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

contents = st.sampled_from([b"alpha", b"beta", b"gamma", b"delta", b""])
names = st.sampled_from(["r/a", "r/b", "logs/x"])


def _machine(store: ArtifactStore) -> type[RuleBasedStateMachine]:
    class RegistryMachine(RuleBasedStateMachine):
        @initialize()
        def reset_model(self) -> None:
            self.expected_versions = {
                name: max(
                    (p.version for p in store.list_packages(name_prefix=name) if p.name == name),
                    default=0,
                )
                for name in ("r/a", "r/b", "logs/x")
            }

        @rule(
            name=names,
            files=st.dictionaries(st.sampled_from(["a", "b/c", "d"]), contents, min_size=1),
            use_input=st.booleans(),
        )
        def put(self, name: str, files: dict[str, bytes], use_input: bool) -> None:
            existing = [p.reference for p in store.list_packages(limit=3)]
            inputs = existing[:1] if use_input else []
            package = store.put(name, files, inputs=inputs, metadata={"n": len(files)})
            self.expected_versions[name] += 1
            assert package.version == self.expected_versions[name]
            assert store.describe(name).id == package.id

        @rule(name=names, tag=st.sampled_from(["production", "staging"]))
        def tag(self, name: str, tag: str) -> None:
            if self.expected_versions[name]:
                store.tag(f"{name}@1", tag)
                assert store.describe(f"{name}:{tag}").version == 1

        @rule(name=names)
        def retrieve(self, name: str) -> None:
            if self.expected_versions[name]:
                package = store.get(name, purpose="stateful")
                for entry in package.files:
                    assert len(store.read_bytes(package.id, entry.path)) == entry.blob.size

        @rule(required=st.booleans())
        def register_schema(self, required: bool) -> None:
            schema = {"type": "object", "required": ["n"] if required else []}
            store.register_schema("report", schema)

        @invariant()
        def views_equal_a_replay_and_chain_is_valid(self) -> None:
            assert store.check_views() == []
            store.verify_log()

    return RegistryMachine


def test_random_histories(store: ArtifactStore) -> None:
    run_state_machine_as_test(
        _machine(store),
        settings=settings(
            max_examples=8,
            stateful_step_count=8,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
