"""Cloud copy faults inside a real backup run: the error names the target, the local archive stays."""

from __future__ import annotations

import json
import subprocess
import sys

from allsky_tasks.environment import PROJECT_DIR

from ..conftest import Site

RECIPIENT = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"


def _run(site: Site, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *argv], cwd=site.root, env=site.environ(), text=True,
                          capture_output=True, timeout=300)


def test_missing_remote_server_setting_fails_the_copy_not_the_archive(site: Site) -> None:
    settings = site.home / "config" / "settings.json"
    data = json.loads(settings.read_text())
    data["remoteserverprotocol"] = "sftp"  # chosen in the WebUI, but no server name entered
    with open(settings, "r+") as fh:
        fh.truncate(0)
        fh.write(json.dumps(data))
    site.spec("cfg", f"""type: config
service: {{pause: never}}
copies:
  - name: remote
    required: true
    allsky_remote: server
    encrypt: {{recipients: ["{RECIPIENT}"]}}
""")
    run = _run(site, "-m", "doit", "-f", str(PROJECT_DIR / "dodo.py"), "backup:cfg")
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "remote" in out and "Server Name (REMOTESERVER_HOST in env.json)" in out, out
    [archive] = site.archives()
    assert _run(site, "-m", "allsky_tasks", "verify", archive.name).returncode == 0


def test_missing_bucket_on_an_optional_target_is_a_warning(site: Site, s3_server) -> None:
    site.spec("cfg", f"""type: config
service: {{pause: never}}
copies:
  - name: b2
    s3: {{bucket: not-there, endpoint_url: "http://127.0.0.1:{s3_server.port}"}}
    encrypt: false
""")
    run = _run(site, "-m", "doit", "-f", str(PROJECT_DIR / "dodo.py"), "backup:cfg")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "b2" in out and "not-there" in out and "does not exist" in out, out
    [archive] = site.archives()
    assert _run(site, "-m", "allsky_tasks", "verify", archive.name).returncode == 0


def test_a_new_card_restores_from_s3_by_url_with_the_identity(site: Site, s3_server, tmp_path) -> None:
    import shutil

    from tests.helpers.cloud_servers import make_bucket

    from ..conftest import tree_state
    from .test_restore import comparable

    make_bucket(s3_server.port, "allsky")
    identity = tmp_path / "kept-on-the-laptop.txt"
    recipient = _run(site, "-m", "allsky_tasks", "keygen", "-o", str(identity)).stdout.strip()
    endpoint = f"http://127.0.0.1:{s3_server.port}"
    site.spec("cfg", f"""type: config
service: {{pause: never}}
copies:
  - name: b2
    required: true
    s3: {{bucket: allsky, prefix: pi-north, endpoint_url: "{endpoint}"}}
    encrypt: {{recipients: ["{recipient}"]}}
""")
    run = _run(site, "-m", "doit", "-f", str(PROJECT_DIR / "dodo.py"), "backup:cfg")
    assert run.returncode == 0, run.stdout + run.stderr
    before = tree_state(site.home)
    # The card dies: no specs, no backups, no records; the config is damaged.
    shutil.rmtree(site.env.backup_dir)
    for spec in site.env.specs_dir.iterdir():
        spec.unlink()
    (site.home / "env.json").unlink()
    done = _run(site, "-m", "allsky_tasks", "restore", "latest-config", "--from",
                f"s3://allsky/pi-north?endpoint_url={endpoint}", "--identity", str(identity),
                "--yes", "--no-service", "--no-undo")
    assert done.returncode == 0, done.stdout + done.stderr
    drop = ("config/myFiles/allsky.db", "config", "config/overlay", "config/logs", "config/myFiles")
    assert comparable(tree_state(site.home), *drop) == comparable(before, *drop)
