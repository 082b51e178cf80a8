"""Keep rules over random histories: pinned and the newest verified always stay; borg's meaning."""

from __future__ import annotations

import time
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from allsky_tasks.spec.retention import Candidate, Rules, keep_reasons, newest_first

DAY = 86400.0
T0 = datetime(2026, 1, 1).timestamp()

histories = st.lists(
    st.tuples(st.floats(min_value=0, max_value=400 * DAY, allow_nan=False),
              st.booleans(), st.booleans()),
    max_size=60,
).map(lambda rows: [Candidate(f"b{i:03d}", T0 + t, pinned=p and i % 3 == 0, verified=v)
                    for i, (t, p, v) in enumerate(rows)])
rules = st.builds(Rules, keep_last=st.integers(0, 5), keep_daily=st.integers(0, 10),
                  keep_weekly=st.integers(0, 6), keep_monthly=st.integers(0, 6))


def _period(c: Candidate, fmt: str) -> str:
    return time.strftime(fmt, time.localtime(c.timestamp))


@settings(max_examples=300, deadline=None)
@given(histories, rules)
def test_pinned_and_newest_verified_are_never_deleted(items: list[Candidate], r: Rules) -> None:
    kept = keep_reasons(items, r)
    assert set(kept) <= {c.name for c in items}
    for c in items:
        if c.pinned:
            assert c.name in kept
    verified = newest_first([c for c in items if c.verified])
    if verified:
        assert verified[0].name in kept


@settings(max_examples=300, deadline=None)
@given(histories, rules)
def test_rules_keep_what_borg_prune_keeps(items: list[Candidate], r: Rules) -> None:
    kept = keep_reasons(items, r)
    ordered = newest_first(items)
    # keep_last: the newest n backups.
    assert all(c.name in kept for c in ordered[:r.keep_last])
    # keep_daily/weekly/monthly: the newest backup of each of the newest n periods is kept,
    # or a later rule's share is counted instead (borg never keeps fewer periods than asked).
    for n, fmt in ((r.keep_daily, "%Y-%m-%d"), (r.keep_weekly, "%G-%V"), (r.keep_monthly, "%Y-%m")):
        periods: dict[str, Candidate] = {}
        for c in ordered:
            periods.setdefault(_period(c, fmt), c)
        heads = list(periods.values())
        covered = sum(1 for c in heads if c.name in kept)
        assert covered >= min(n, len(heads))
    # Nothing is kept without a reason: with no protection, the count is bounded by the rules.
    plain = [Candidate(c.name, c.timestamp) for c in items]
    bound = r.keep_last + r.keep_daily + r.keep_weekly + r.keep_monthly + 3  # +oldest per rule
    assert len(keep_reasons(plain, r)) <= min(len(items), bound)


@settings(max_examples=200, deadline=None)
@given(histories, rules)
def test_pruning_again_removes_nothing_more_than_rules_allow(items: list[Candidate],
                                                             r: Rules) -> None:
    kept = keep_reasons(items, r)
    left = [c for c in items if c.name in kept]
    again = keep_reasons(left, r)
    # A second prune may trim "(oldest)" keepers, but never pinned or newest verified ones.
    for c in left:
        if c.pinned:
            assert c.name in again


def test_no_rules_keep_everything() -> None:
    items = [Candidate(f"b{i}", T0 + i * DAY) for i in range(5)]
    assert len(keep_reasons(items, None)) == 5
    assert Rules.from_mapping({}) is None and Rules.from_mapping({"keep_daily": 3}) == Rules(
        keep_daily=3)


def test_daily_weekly_monthly_like_borg_docs() -> None:
    # Two backups a day for 90 days; keep 7 daily, 4 weekly, 3 monthly (borg's doc example).
    items = [Candidate(f"d{d:03d}-{h}", T0 + d * DAY + h * 3600) for d in range(90)
             for h in (1, 13)]
    kept = keep_reasons(items, Rules(keep_daily=7, keep_weekly=4, keep_monthly=3))
    ordered = newest_first(items)
    daily = [c.name for c in ordered if kept.get(c.name, "").startswith("keep_daily")]
    assert daily == [f"d{d:03d}-13" for d in range(89, 82, -1)]  # the newest of each day
    assert sum(w.startswith("keep_weekly") for w in kept.values()) == 4
    assert sum(w.startswith("keep_monthly") for w in kept.values()) == 3
    assert len(kept) == 14


BORG_SPLIT = r"""
import json, sys
from collections import namedtuple
from datetime import datetime, timezone
from borg.helpers.misc import prune_split
A = namedtuple("A", "id ts")
out = []
for case in json.load(sys.stdin):
    archives = [A(n, datetime.fromtimestamp(t, timezone.utc)) for n, t in case["items"]]
    kept_because = {}
    for rule, n in (("secondly", case["last"]), ("daily", case["daily"]),
                    ("weekly", case["weekly"]), ("monthly", case["monthly"])):
        prune_split(archives, rule, n, kept_because)
    out.append(sorted(kept_because))
print(json.dumps(out))
"""


def test_same_keeps_as_borgs_own_prune_split() -> None:
    """The rules against borg's own prune_split (Debian's borgbackup), over random histories."""
    import json
    import random
    import subprocess

    probe = subprocess.run(["/usr/bin/python3", "-c", "import borg.helpers.misc"],
                           capture_output=True)
    if probe.returncode:
        import pytest

        pytest.skip("borgbackup's Python package is not importable by /usr/bin/python3")
    rng = random.Random(14)
    cases = []
    for _ in range(300):
        # Distinct seconds: borg's keep-last is per second, ours per backup.
        stamps = rng.sample(range(0, int(500 * DAY)), rng.randint(0, 50))
        cases.append({"items": [[f"b{i:03d}", T0 + s] for i, s in enumerate(stamps)],
                      "last": rng.randint(0, 4), "daily": rng.randint(0, 9),
                      "weekly": rng.randint(0, 6), "monthly": rng.randint(0, 8)})
    proc = subprocess.run(["/usr/bin/python3", "-c", BORG_SPLIT], input=json.dumps(cases),
                          capture_output=True, text=True, check=True)
    for case, borg_kept in zip(cases, json.loads(proc.stdout), strict=True):
        items = [Candidate(n, t) for n, t in case["items"]]
        rules = Rules(keep_last=case["last"], keep_daily=case["daily"],
                      keep_weekly=case["weekly"], keep_monthly=case["monthly"])
        assert sorted(keep_reasons(items, rules)) == borg_kept, case
