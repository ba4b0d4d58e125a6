"""Projections: view tables kept in step with the event log, rebuilt and checked from it."""

from artifactstore_core.projections.projectors import project
from artifactstore_core.projections.rebuild import Difference, check_views, rebuild_views
from artifactstore_core.projections.writer import ProjectionWriter

__all__ = ["Difference", "ProjectionWriter", "check_views", "project", "rebuild_views"]
