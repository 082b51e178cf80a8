"""prune:<spec> runs in the chain after verify (and any copy tasks) and keeps what the rules say."""

from __future__ import annotations

import json
import subprocess
import sys

from allsky_tasks.archive.manifest import sidecar_path

from ..conftest import Site


def _cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "allsky_tasks", *args], cwd=site.root,
                          env=site.environ(), text=True, capture_output=True, timeout=300)


def _change(site: Site, n: int) -> None:
    """Edit a config file so the next run packs a new archive."""
    path = site.home / "config" / "overlay" / "config" / "overlay.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"run": n}))


def test_chain_prunes_after_verify_and_never_the_pinned(site: Site) -> None:
    site.spec("cfg", "type: config\nretention: {keep_last: 2}\n")
    made = []
    for n in range(3):
        _change(site, n)
        proc = _cli(site, "run", "backup:cfg")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert ". prune:cfg" in proc.stdout or "prune cfg:" in proc.stdout
        made.append(set(site.archives()) - set(made))
        made[-1] = made[-1].pop()
        if n == 0:
            assert _cli(site, "pin", made[0].name).returncode == 0
    # The newest two by the rule, plus the pinned first one; the second went (with its sidecar).
    assert site.archives() == sorted([made[0], made[1], made[2]])
    _change(site, 9)
    assert _cli(site, "run", "backup:cfg").returncode == 0
    left = site.archives()
    assert made[0] in left and made[1] not in left and made[2] in left and len(left) == 3
    assert not sidecar_path(made[1]).exists()
    record = json.loads((site.env.state_dir / "specs" / "cfg" / "prune.json").read_text())
    assert record["deleted"] == [made[1].name, sidecar_path(made[1]).name]
    assert record["bytesFreed"] > 0


def test_prune_dry_run_shows_the_bytes_it_would_free(site: Site) -> None:
    site.spec("cfg", "type: config\n")
    for n in range(2):
        _change(site, n)
        assert _cli(site, "run", "--quiet", "backup:cfg").returncode == 0
    old = min(site.archives(), key=lambda p: p.stat().st_mtime_ns)
    size = old.stat().st_size + sidecar_path(old).stat().st_size
    proc = _cli(site, "prune", "--dry-run", "--keep-last", "1")
    assert proc.returncode == 0, proc.stderr
    assert f"({size} bytes)" in proc.stdout and "1 backup(s) would be deleted" in proc.stdout
    assert old.exists()


def test_prune_waits_for_the_spec_s_verify_and_copies(site: Site) -> None:
    from allsky_tasks.backup.tasks import gen_stages

    site.spec("cfg", "type: config\n")
    tasks = {f"{t['basename']}:{t['name']}": t for t in gen_stages(site.env) if t.get("name")}
    assert set(tasks["prune:cfg"]["task_dep"]) == {"verify:cfg", "copy:cfg"}
    assert "prune:cfg" in tasks["backup:cfg"]["task_dep"]
