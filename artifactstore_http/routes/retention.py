"""Retention of one package: holds, class and expiry, explanation, tiers, restore."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from artifactstore_core.domain.retention import KeepRule
from artifactstore_core.errors import AccessDeniedError
from artifactstore_http.deps import Caller, CallerDep, StoreDep
from artifactstore_http.middleware import segment
from artifactstore_http.routes.common import load_package, package_response, package_url

router = APIRouter(tags=["retention"])


class HoldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=4000)
    kind: str = Field("legal", max_length=64)


class RetentionChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    retention_class: str | None = Field(None, alias="class", max_length=128)
    expires_at: dt.datetime | None = None
    never_expires: bool = False
    override: bool = False
    reason: str | None = Field(None, max_length=4000)


class KeepRuleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keep_latest: int = Field(1, ge=1, le=1000)
    reason: str | None = Field(None, max_length=4000)


class TierChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(max_length=32)


@router.post("/v1/packages/{ref}/holds", status_code=201)
def place_hold(ref: str, body: HoldRequest, store: StoreDep, caller: CallerDep) -> Response:
    """Place a hold (needs ``hold``): 201 + the hold, ``Location`` names it."""
    package = load_package(store, caller, segment(ref), "hold")
    hold = store.place_hold(str(package.id), reason=body.reason, kind=body.kind,
                            actor=caller.actor)  # fmt: skip
    return JSONResponse(
        hold.to_dict(), status_code=201,
        headers={"Location": f"{package_url(package)}/holds/{hold.hold_id}"},
    )  # fmt: skip


@router.delete("/v1/packages/{ref}/holds/{hold_id}")
def release_hold(
    ref: str,
    hold_id: str,
    store: StoreDep,
    caller: CallerDep,
    reason: Annotated[str | None, Query(max_length=4000)] = None,
) -> Response:
    """Release one hold (needs ``hold``); answers the package."""
    package = load_package(store, caller, segment(ref), "hold")
    released = store.release_hold(str(package.id), segment(hold_id), reason=reason,
                                  actor=caller.actor)  # fmt: skip
    return package_response(released)


@router.get("/v1/packages/{ref}/retention")
def explain(ref: str, store: StoreDep, caller: CallerDep) -> dict[str, Any]:
    """Why the package is kept or when it goes."""
    package = load_package(store, caller, segment(ref), "read")
    return store.explain(str(package.id)).to_dict()


@router.put("/v1/packages/{ref}/retention")
def set_retention(ref: str, body: RetentionChange, store: StoreDep, caller: CallerDep) -> Response:
    """Change class and/or expiry (needs ``retention-admin``); shortening a protected
    class needs ``override`` and a ``reason``."""
    package = load_package(store, caller, segment(ref), "retention-admin")
    changed = store.set_retention(
        str(package.id), retention_class=body.retention_class, expires_at=body.expires_at,
        never_expires=body.never_expires, override=body.override, reason=body.reason,
        actor=caller.actor,
    )  # fmt: skip
    return package_response(changed)


@router.post("/v1/packages/{ref}/tier")
def move_tier(ref: str, body: TierChange, store: StoreDep, caller: CallerDep) -> Response:
    """Move the package's bytes to tier ``to`` (needs ``retention-admin``), verified."""
    package = load_package(store, caller, segment(ref), "retention-admin")
    return package_response(store.move_tier(str(package.id), body.to, actor=caller.actor))


@router.post("/v1/packages/{ref}:restore")
def restore(ref: str, store: StoreDep, caller: CallerDep) -> Response:
    """Copy an archived package's bytes back to the hot tier (needs ``retention-admin``)."""
    package = load_package(store, caller, segment(ref), "retention-admin")
    return package_response(store.restore(str(package.id), actor=caller.actor))


def _require_over_rule(caller: Caller, rule: KeepRule, action: str) -> None:
    """``action`` over every name the rule can match: all names for a class rule,
    ``<prefix>`` and ``<prefix>/**`` for a prefix rule."""
    if rule.scope == "class":
        caller.require(action)
        return
    caller.require(action, rule.pattern)
    assert caller.principal is not None  # require refuses anonymous writes
    glob = f"{rule.pattern}/**"
    if not any(s.grants(action) and s.covers_glob(glob) for s in caller.principal.scopes):
        raise AccessDeniedError(action, glob, detail=f"keep rule {rule.selector!r} needs "
                                f"the {action!r} scope on {glob!r}")  # fmt: skip


@router.get("/v1/retention/keep-rules")
def keep_rules(store: StoreDep, caller: CallerDep) -> dict[str, Any]:
    """The keep rules in force that concern the caller: class rules, and prefix rules over
    names it may read, write or administer."""
    if caller.principal is None:
        caller.require_some("read")  # anonymous: only with anonymous reads configured

    def shown(rule: KeepRule) -> bool:
        actions = ("read", "write", "retention-admin")
        return rule.scope == "class" or any(caller.allows(a, rule.pattern) for a in actions)

    return {"items": [rule.to_dict() for rule in store.keep_rules() if shown(rule)]}


@router.put("/v1/retention/keep-rules/{selector:path}")
def set_keep_rule(
    selector: str, body: KeepRuleChange, store: StoreDep, caller: CallerDep
) -> dict[str, Any]:
    """Keep the newest ``keep_latest`` versions of each name the selector matches.

    A new prefix rule, or a higher count, only keeps more of what the caller may write:
    it needs ``write`` on those names (so a pipeline's token can keep its current
    outputs); a class rule, or a lower count (with a ``reason``), needs ``retention-admin``.
    """
    rule = KeepRule.parse(selector, body.keep_latest)
    current = {r.selector: r.keep_latest for r in store.keep_rules()}.get(rule.selector, 0)
    keeps_more = rule.scope == "prefix" and rule.keep_latest >= current
    _require_over_rule(caller, rule, "write" if keeps_more else "retention-admin")
    kept = store.set_keep_rule(rule.selector, rule.keep_latest, reason=body.reason,
                               actor=caller.actor)  # fmt: skip
    return kept.to_dict()


@router.delete("/v1/retention/keep-rules/{selector:path}", status_code=204)
def remove_keep_rule(
    selector: str,
    store: StoreDep,
    caller: CallerDep,
    reason: Annotated[str | None, Query(max_length=4000)] = None,
) -> Response:
    """Remove a keep rule (needs ``retention-admin`` on its names, and a ``reason``)."""
    rule = KeepRule.parse(selector)
    _require_over_rule(caller, rule, "retention-admin")
    store.remove_keep_rule(rule.selector, reason=reason, actor=caller.actor)
    return Response(status_code=204)
