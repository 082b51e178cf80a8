"""Secrets stay out of logs (ping, apprise, rclone remotes); WebUI messages give the reason, escaped."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from allsky_tasks.copies.target import target_from_spec
from allsky_tasks.errors import CopyError
from allsky_tasks.monitor.notify import append_message, webui_message, webui_text
from allsky_tasks.redact import redact, redact_remote

from ..conftest import Site

UUID = "5f3c1a9e-7d2b-4e8f-9a61-0c2d3b4e5f67"  # a healthchecks check's secret


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(site: Site, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "allsky_tasks", "run", *args], cwd=site.root,
                          env={**site.environ(), **(env or {})}, text=True, capture_output=True, timeout=300)


def _everything_written(site: Site) -> str:
    """The run's record, status and the WebUI's messages: where a secret must not land either."""
    texts = [p.read_text(errors="replace") for p in (site.env.state_dir / "runs").glob("*.json")]
    messages = site.home / "config" / "messages.txt"
    texts += [messages.read_text()] if messages.exists() else []
    return "\n".join(texts)


def test_a_failing_ping_never_prints_its_secret(site: Site) -> None:
    site.spec("cfg", "type: config\nservice: {pause: never}\n")
    url = f"http://127.0.0.1:{_free_port()}/ping/{UUID}"  # nobody listens: every ping fails
    run = _run(site, "backup:cfg", env={"ALLSKY_PING_URL": url})
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "ping http://127.0.0.1:" in out and "/***" in out and "failed" in out, out
    assert UUID not in out and UUID not in _everything_written(site)


def test_apprise_urls_and_their_log_lines_hide_tokens(site: Site, tmp_path: Path) -> None:
    pytest.importorskip("apprise")
    token = "123456789:AAE-secret-bot-token"
    # The backup fails (no such images folder): there is something to tell.
    site.spec("cfg", f"type: images\nservice: {{pause: never}}\nimages: {tmp_path / 'no-images'}\n")
    env = {"ALLSKY_NOTIFY_URLS": f"json://127.0.0.1:{_free_port()}/{token} tgram://{token}/42"}
    run = _run(site, "backup:cfg", env=env)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert token not in out and token not in _everything_written(site), out


def test_rclone_remote_credentials_never_reach_a_message(tmp_path: Path) -> None:
    secret = "wJalrXUtnFEMI-K7MDENG"
    remote = f":webdav,url='http://127.0.0.1:{_free_port()}/',pass={secret},user=pi:allsky"
    target = target_from_spec({"name": "dav", "rclone": {"remote": remote, "config": str(tmp_path / "none.conf")}},
                              {})
    assert secret not in target.describe() and "pass=***" in target.describe()
    with pytest.raises(CopyError) as info:
        target.check_ready()  # the real rclone, failing to connect: its stderr echoes the remote
    assert secret not in str(info.value) and "dav" in str(info.value)
    assert redact_remote(remote).endswith(":allsky")


def test_redact_hides_paths_queries_userinfo_and_tokens() -> None:
    assert redact(f"ping https://hc-ping.com/{UUID}/fail failed") == "ping https://hc-ping.com/*** failed"
    assert redact("mailto://me:pw@gmail.com") == "mailto://***@***"
    assert redact("discord://1234/abcd-token and https://nas.local:8443/") == \
        "discord://***/*** and https://nas.local:8443/"
    assert redact("to :s3,access_key_id=AKIA1,secret_access_key='x,y':bucket") == \
        "to :s3,access_key_id=***,secret_access_key=***:bucket"


# --- WebUI messages: the reason, escaped as a class ---

def test_a_copy_failure_reaches_the_webui_with_its_reason(site: Site, tmp_path: Path) -> None:
    site.spec("cfg", f"""type: config
service: {{pause: never}}
copies:
  - name: usb
    required: true
    path: {tmp_path / 'media' / 'usb' / 'allsky'}
    must_be_mounted: true
""")
    run = _run(site, "backup:cfg")
    assert run.returncode == 22, run.stdout + run.stderr
    [line] = (site.home / "config" / "messages.txt").read_text().splitlines()
    message = line.split("\t")[5]
    assert "required copy to usb failed:" in message and "mounted" in message, message
    assert not message.rstrip().endswith("failed:")


@pytest.mark.parametrize("how", ["written", "addMessage.sh"])
def test_text_for_the_webui_is_html_escaped(site: Site, how: str) -> None:
    hostile = 'file <img src=x onerror="alert(1)"> & <script>steal()</script> 100% done\nnext'
    if how == "addMessage.sh":
        calls = site.root / "calls.txt"
        script = site.home / "scripts" / "addMessage.sh"
        script.parent.mkdir(exist_ok=True)
        script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$4" >> {calls}\n')
        script.chmod(0o755)
        webui_message(site.home, "warning", hostile)
        text = calls.read_text()
    else:
        line = append_message(site.home / "config" / "messages.txt", "warning", hostile)
        text = line.split("\t")[5]
        assert text == webui_text(hostile) and "<br>" in text  # our own markup survives
    for raw in ("<img", "<script", 'onerror="'):
        assert raw not in text, text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in text and "&amp;" in text


def test_a_hostile_file_name_in_a_warning_is_escaped_in_messages_txt(site: Site) -> None:
    odd = site.home / "config" / "myFiles" / "<b onmouseover=alert(1)>x</b>"
    odd.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(odd)  # not a regular file: the scan warns, naming it
    site.spec("cfg", "type: config\nservice: {pause: never}\nsections: {myfiles: true}\non_file_error: warn\n")
    run = _run(site, "backup:cfg")
    assert run.returncode == 0, run.stdout + run.stderr
    text = (site.home / "config" / "messages.txt").read_text()
    assert "&lt;b onmouseover=alert(1)&gt;x&lt;/b&gt;" in text and "<b " not in text, text
    assert json.dumps(text)  # one line per message, as the WebUI reads it
