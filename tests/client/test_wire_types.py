"""The JSON the server sends parses back into the core's types: ``from_dict`` round trips."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from artifactstore_core import ArtifactStore, Settings
from artifactstore_core.domain.package import Hold, Package
from artifactstore_core.retention.explain import Explanation
from artifactstore_core.retention.sweep import SweepPlan, SweepResult
from artifactstore_core.testing.clock import FrozenClock

pytestmark = pytest.mark.integration
DAY = dt.timedelta(days=1)


@pytest.fixture
def tiered(database_url: str, tmp_path: Path) -> ArtifactStore:
    settings = Settings(
        database_url=database_url,
        storage_url=str(tmp_path / "hot"),
        tier_cold_url=str(tmp_path / "cold"),
    )
    return ArtifactStore.from_settings(settings, clock=FrozenClock())


def test_a_package_with_holds_tags_inputs_and_expiry_round_trips(tiered: ArtifactStore) -> None:
    source = tiered.put("in/raw", b"raw bytes")
    package = tiered.put(
        "reports/daily",
        {"a.csv": b"a,b\n", "sub/log.txt": "log line\n"},
        kind="report",
        metadata={"rows": 2, "nested": {"k": [1, 2.5, None, "x"]}},
        inputs=[source.reference],
        provenance={"run_id": "r-1", "producer": "tests", "attributes": {"team": "x"}},
        retention_class="transient",
    )
    tiered.tag(package.id, "stable")
    hold = tiered.place_hold(package.id, reason="audit", kind="operational")
    shown = tiered.describe(package.id)
    assert shown.holds and shown.tags == ("latest", "stable") and shown.expires_at
    assert Package.from_dict(shown.to_dict()) == shown
    assert Hold.from_dict(hold.to_dict()) == hold


def test_an_expired_package_round_trips(tiered: ArtifactStore) -> None:
    package = tiered.put("gone", b"bytes", retention_class="transient")
    assert isinstance(tiered.clock, FrozenClock)
    tiered.clock.advance(30 * DAY)
    tiered.sweep()
    expired = tiered.describe(package.id)
    assert expired.status == "expired" and expired.expired_at is not None
    assert Package.from_dict(expired.to_dict()) == expired


def test_sweep_plans_results_and_explanations_round_trip(tiered: ArtifactStore) -> None:
    tiered.put("due", {"own": b"own", "shared": b"shared"}, retention_class="transient")
    tiered.put("live", {"shared": b"shared"}, retention_class="summary-evidence")
    kept = tiered.put("kept", b"kept", retention_class="transient")
    tiered.place_hold(kept.id, reason="legal")
    assert isinstance(tiered.clock, FrozenClock)
    tiered.clock.advance(30 * DAY)
    plan = tiered.plan_sweep()
    assert plan.expire and plan.delete and plan.shared_kept_blobs == 1
    assert SweepPlan.from_dict(plan.to_dict()).to_dict() == plan.to_dict()
    result = tiered.sweep()
    assert result.expired and result.deleted
    again = SweepResult.from_dict(result.to_dict())
    assert again.to_dict() == result.to_dict()
    assert again.expired == result.expired and again.deleted == result.deleted
    explanation = tiered.explain(kept.id)
    parsed = Explanation.from_dict(explanation.to_dict(), tiered.describe(kept.id))
    assert parsed == explanation


def test_token_infos_round_trip(tiered: ArtifactStore) -> None:
    from artifactstore_core.access import TokenInfo

    issued = tiered.tokens.issue(
        actor="ci", scopes=["package:reports/**:read,write"], expires_at=DAY, run_id="r-1",
        description="nightly", issued_by="admin",
    )  # fmt: skip
    revoked = tiered.tokens.revoke(issued.token.id)
    for info in (issued.token, revoked):
        assert TokenInfo.from_dict(info.to_dict()) == info
