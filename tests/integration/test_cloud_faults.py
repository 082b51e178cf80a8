"""Cloud copy faults inside a real backup run: the error names the target, the local archive stays."""

from __future__ import annotations

import json
import subprocess
import sys

from allsky_tasks.environment import PROJECT_DIR
from tests.helpers.cloud_servers import s3_env, s3_server  # noqa: F401

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
