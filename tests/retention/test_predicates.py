"""The SQL forms of the retention rules agree with the pure specification, on each database.

Every case of ``tests/unit/test_retention_rules.py`` is a row of a table shaped like
``retention_state``; each predicate of ``retention/predicates.py`` must select exactly the
rows its pure counterpart in ``domain.retention`` accepts (NULL expiries included).
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from artifactstore_core.config import create_engine
from artifactstore_core.domain.retention import TIERS, tiers_holding
from artifactstore_core.retention import predicates as rules
from artifactstore_core.schema import Timestamp, metadata
from tests.unit.test_retention_rules import NOW, STATES

pytestmark = pytest.mark.integration

_CASES = sa.MetaData()
cases = sa.Table(
    "retention_rule_cases",
    _CASES,
    sa.Column("case", sa.Integer, primary_key=True),
    sa.Column("package_id", sa.Uuid, nullable=False),
    sa.Column("retention_class", sa.String(64), nullable=False, default="transient"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("on_hold", sa.Boolean, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=True),
    sa.Column("retrieval_tier", sa.String(16), nullable=False),
    sa.Column("restore_status", sa.String(16), nullable=True),
)
PLACES = [("hot", None), ("cold", None), ("archive", None), ("archive", "restored")]


def _selected(conn: sa.Connection, predicate: sa.ColumnElement[bool]) -> set[int]:
    return set(conn.execute(sa.select(cases.c.case).where(predicate)).scalars())


def test_sql_predicates_select_what_the_pure_rules_accept(database_url: str) -> None:
    engine = create_engine(database_url)
    metadata.create_all(engine)  # "due" asks the keep rules (none here) about each package
    _CASES.create_all(engine)
    rows = [
        {"case": index * len(PLACES) + spot, "package_id": uuid.uuid4(), "status": status,
         "on_hold": held, "expires_at": expires, "retrieval_tier": tier,
         "restore_status": restore}
        for index, (status, held, expires, *_) in enumerate(STATES)
        for spot, (tier, restore) in enumerate(PLACES)
    ]  # fmt: skip
    expected = {row["case"]: STATES[row["case"] // len(PLACES)][3:] for row in rows}
    try:
        with engine.begin() as conn:
            conn.execute(cases.insert(), rows)
            assert _selected(conn, rules.live(cases)) == {c for c, e in expected.items() if e[0]}
            assert _selected(conn, rules.due(cases, NOW)) == {
                c for c, e in expected.items() if e[1]
            }
            assert _selected(conn, rules.kept_by_sweep(cases, NOW)) == {
                c for c, e in expected.items() if e[2]
            }
            assert _selected(conn, ~rules.kept_by_sweep(cases, NOW)) == {
                c for c, e in expected.items() if not e[2]
            }  # never NULL: NOT kept is the exact complement
            for tier in TIERS:
                assert _selected(conn, rules.needs_copy(cases, tier)) == {
                    row["case"]
                    for row in rows
                    if tier in tiers_holding(row["retrieval_tier"], row["restore_status"])
                }
    finally:
        _CASES.drop_all(engine)
        engine.dispose()


def test_a_limited_plan_keeps_the_due_packages_it_leaves_for_later(database_url: str) -> None:
    """``kept_by_sweep`` with ``through``: due packages after the last one a limited sweep
    expires stay live."""
    engine = create_engine(database_url)
    metadata.create_all(engine)
    _CASES.create_all(engine)
    ids = sorted(uuid.uuid4() for _ in range(4))
    try:
        with engine.begin() as conn:
            conn.execute(
                cases.insert(),
                [
                    {"case": i, "package_id": pid, "status": "active", "on_hold": False,
                     "expires_at": NOW, "retrieval_tier": "hot", "restore_status": None}
                    for i, pid in enumerate(ids)
                ],
            )  # fmt: skip
            kept = _selected(conn, rules.kept_by_sweep(cases, NOW, through=ids[1]))
            assert kept == {2, 3}
    finally:
        _CASES.drop_all(engine)
        engine.dispose()
