"""Retention: the prune plan never loses a pinned or the newest good backup (random histories)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allsky_tasks.archive.manifest import sidecar_path
from allsky_tasks.archive.pins import PinStore
from allsky_tasks.inventory.full_read import verify_backup
from allsky_tasks.inventory.listing import list_backups, load_record
from allsky_tasks.inventory.retention import Item, plan_prune, prune, set_pinned

from ..conftest import Site, backup
from .test_inventory import ALLSKY_MADE, _cli

GROUPS = {"quick": "config", "full": "config", "nights": "images", "allsky-config": "config",
          "allsky-images": "images"}


def _history(rng: random.Random) -> tuple[list[Item], dict[str, int | None], int | None]:
    """Random backups, policies and an optional --keep-last."""
    items = []
    for i in range(rng.randint(0, 40)):
        group = rng.choice(list(GROUPS))
        items.append(Item(name=f"b{i:03d}", group=group, type=GROUPS[group],
                          timestamp=float(rng.randint(0, 30)),  # many same-second ties
                          pinned=rng.random() < 0.15, verified=rng.random() < 0.4,
                          readable=rng.random() < 0.95, mtime=rng.random()))
    policy = {g: rng.choice([None, 0, 1, 2, 3, 5]) for g in GROUPS}
    override = rng.choice([None, None, 0, 1, 2])
    return items, policy, override


def _newest_first(items: list[Item]) -> list[Item]:
    return sorted(items, key=lambda i: (-i.timestamp, -i.mtime, i.name))


@pytest.mark.parametrize("seed", range(400))
def test_prune_plan_invariants(seed: int) -> None:
    rng = random.Random(seed)
    items, policy, override = _history(rng)
    plan = plan_prune(items, policy, override)
    by_name = {d.name: d for d in plan}
    assert sorted(by_name) == sorted(i.name for i in items) and len(plan) == len(items)
    deleted = {d.name for d in plan if d.delete}
    for item in items:
        if item.pinned or not item.readable:
            assert item.name not in deleted, (item, by_name[item.name])
    for group in GROUPS:
        members = _newest_first([i for i in items if i.group == group])
        n = override if override is not None else policy[group]
        if n is None:
            assert not deleted & {i.name for i in members}
            continue
        assert not deleted & {i.name for i in members[:n]}  # the newest n always stay
        assert not deleted & {i.name for i in members if not i.verified}  # never read: kept
        good = [i for i in members if i.verified and i.readable]
        if good:
            assert good[0].name not in deleted  # the newest verified one of each spec stays
    good_config = [i for i in items if i.type == "config" and i.verified and i.readable]
    if good_config:
        assert any(i.name not in deleted for i in good_config)
    # Pruning what is left changes nothing more: the plan is stable.
    left = [i for i in items if i.name not in deleted]
    assert not any(d.delete for d in plan_prune(left, policy, override))


_items = st.lists(st.tuples(st.integers(0, 20), st.booleans(), st.booleans(), st.booleans()),
                  max_size=30).map(lambda rows: [
                      Item(f"b{i:02d}", "cfg", "config", float(t), pinned=p, verified=v,
                           readable=r or v) for i, (t, v, p, r) in enumerate(rows)])


@settings(max_examples=300, deadline=None)
@given(_items, st.integers(0, 4))
def test_a_verified_backup_is_never_deleted_in_favour_of_one_that_cannot_be_restored(
        items: list[Item], keep: int) -> None:
    """Each deleted backup was verified, and `keep` verified ones newer than it stay."""
    plan = {d.name: d for d in plan_prune(items, {"cfg": keep})}
    order = {i.name: (-i.timestamp, -i.mtime, i.name) for i in items}
    kept_good = [i for i in items if i.verified and i.readable and not plan[i.name].delete]
    for item in items:
        if not plan[item.name].delete:
            continue
        assert item.verified and item.readable and not item.pinned
        newer = [k for k in kept_good if order[k.name] < order[item.name]]
        assert len(newer) >= max(keep, 1), (item, plan)


def test_plan_reasons_read_well() -> None:
    items = [Item("newest", "quick", "config", 4.0),
             Item("new", "quick", "config", 3.0, verified=True),
             Item("mid", "quick", "config", 2.0, verified=True),
             Item("old", "quick", "config", 1.0, pinned=True),
             Item("oldest", "quick", "config", 0.0, verified=True)]
    plan = {d.name: d for d in plan_prune(items, {"quick": 1})}
    assert plan["newest"].reason.startswith("not verified: does not count") and not plan["newest"].delete
    assert plan["new"].reason == "one of the newest 1 verified of quick" and not plan["new"].delete
    assert plan["mid"].delete and plan["oldest"].delete
    assert plan["old"].reason == "pinned" and not plan["old"].delete


def test_pin_and_unpin_are_stored_in_our_state(site: Site) -> None:
    archive = backup(site, "quick", "type: config\n")
    side = sidecar_path(archive).read_bytes()
    assert set_pinned(archive, True).pinned
    assert PinStore(site.env.state_dir).entry(archive)["pinned"] is True  # type: ignore[index]
    assert not set_pinned(archive, False).pinned
    assert PinStore(site.env.state_dir).entry(archive)["pinned"] is False  # type: ignore[index]
    assert sidecar_path(archive).read_bytes() == side  # the sidecar is never written


def test_pin_an_allsky_archive_without_sidecar(tmp_path: Path) -> None:
    dest = tmp_path / "allskybackups"  # not a backup folder of ours: the default state keeps it
    dest.mkdir()
    archive = dest / ALLSKY_MADE[0].name
    shutil.copy(ALLSKY_MADE[0], archive)
    assert set_pinned(archive, True).pinned
    assert not sidecar_path(archive).exists() and not (dest / ".allsky-tasks").exists()
    assert load_record(archive).pinned


def test_prune_follows_spec_retention_and_keeps_pinned(site: Site) -> None:
    spec = "type: config\nretention: {keep_last: 1}\n"
    made = [backup(site, "quick", spec) for _ in range(5)]
    site.spec("broken", "type: [\n")
    pinned = made[0]
    set_pinned(pinned, True)
    for archive in made[1:4]:
        verify_backup(archive)
    dest = site.env.backup_dir
    plan = prune(dest, site.env, dry_run=True)
    assert any("broken.yaml" in n for n in plan.notes)
    # made[3] is the newest verified; made[4] was never read: it neither counts nor goes.
    assert {d.name for d in plan.to_delete} == {made[1].name, made[2].name}
    assert all(p.exists() for p in made)  # dry run
    done = prune(dest, site.env, dry_run=False)
    assert done.deleted == [made[2].name, sidecar_path(made[2]).name,
                            made[1].name, sidecar_path(made[1]).name]
    assert {r.name for r in list_backups(dest)} == {made[0].name, made[3].name, made[4].name}
    assert load_record(pinned).pinned
    # --keep-last 0: the pinned one, the newest verified one and the unread one survive.
    verify_backup(made[4])
    prune(dest, site.env, keep_last=0, dry_run=False)
    assert {r.name for r in list_backups(dest)} == {made[0].name, made[4].name}


def test_cli_prune_dry_run_and_yes(site: Site, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    made = [backup(site, "quick", "type: config\nretention: {keep_last: 1}\n") for _ in range(3)]
    for archive in made[1:]:
        verify_backup(archive)
    assert _cli(site, monkeypatch, "prune", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "DELETE" in out and "would be deleted" in out and all(p.exists() for p in made)
    assert _cli(site, monkeypatch, "pin", made[0].name) == 0
    assert "not verified yet" in capsys.readouterr().out
    assert _cli(site, monkeypatch, "prune", "--yes") == 0
    assert [p.exists() for p in made] == [True, False, True]
    assert _cli(site, monkeypatch, "unpin", made[0].name) == 0
    assert _cli(site, monkeypatch, "prune", "--keep-last", "-1") == 20
