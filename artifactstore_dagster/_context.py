"""Reading Dagster contexts the same way whichever way they were built.

A context from a real step has everything; one from ``build_output_context`` or
``build_input_context`` lacks the run, the step and the instance, and Dagster raises
(differently across 1.x releases) when those are asked for. These helpers answer
``None`` instead, and hide the few properties whose names moved between releases.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from dagster import (
    DagsterInvariantViolationError,
    InputContext,
    MetadataValue,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    OutputContext,
)

if TYPE_CHECKING:
    from dagster import DagsterInstance
    from dagster._core.execution.context.system import StepExecutionContext

T = TypeVar("T")

#: What ``build_output_context`` uses as run id when none is given.
RUN_ID_PLACEHOLDER = "__EPHEMERAL_RUN_ID"


def optional(getter: Callable[[], T]) -> T | None:
    """A context property that raises when the context was built without it, or ``None``."""
    try:
        return getter()
    except (DagsterInvariantViolationError, AttributeError, KeyError):
        return None
    except Exception as exc:  # dagster's check.failed raises CheckError
        if type(exc).__name__ == "CheckError":
            return None
        raise


def run_id(context: OutputContext) -> str | None:
    """The run id, or ``None`` for a context built outside a run (Dagster's placeholder)."""
    found = optional(lambda: context.run_id)
    return None if found in (None, RUN_ID_PLACEHOLDER) else found


def step_context(context: InputContext | OutputContext) -> StepExecutionContext | None:
    """The step's execution context, or ``None`` outside a step."""
    return optional(lambda: context.step_context)


def instance(context: InputContext) -> DagsterInstance | None:
    """The Dagster instance, from the context or its step; ``None`` without one."""
    found: DagsterInstance | None = optional(lambda: context.instance)
    if found is None:
        step = step_context(context)
        found = step.instance if step is not None else None
    return found


def op_code_version(context: OutputContext) -> str | None:
    """The op's ``code_version`` (Dagster 1.x offers it only as the deprecated ``version``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        version: str | None = optional(lambda: context.op_def.version)
    return version


def group_name(context: OutputContext) -> str | None:
    """The group of the asset an output materializes (``None`` for op outputs)."""
    key = optional(lambda: context.asset_key)
    step = step_context(context)
    if key is None or step is None:
        return None
    group: str | None = optional(lambda: step.job_def.asset_layer.get(key).group_name)
    return group


def plain(value: Any) -> Any:
    """The Python value of a metadata entry (``MetadataValue`` objects are unwrapped)."""
    return value.value if isinstance(value, MetadataValue) else value


def setting(context: OutputContext, key: str) -> Any:
    """``key`` from the output's runtime metadata, else from its definition metadata."""
    runtime = optional(lambda: context.output_metadata) or {}
    if key in runtime:
        return plain(runtime[key])
    definition = context.definition_metadata or {}
    return plain(definition.get(key))


def partition_key_and_dimensions(
    key: str, partitions_def: Any
) -> tuple[str, Mapping[str, str] | None]:
    """A partition key as text, and its key per dimension for a multi-partitioned asset."""
    if isinstance(key, MultiPartitionKey):
        return str(key), dict(key.keys_by_dimension)
    if isinstance(partitions_def, MultiPartitionsDefinition):
        multi = partitions_def.get_partition_key_from_str(key)
        return str(multi), dict(multi.keys_by_dimension)
    return str(key), None
