"""messages.txt lines exactly as Allsky's addMessage.sh writes them, with its de-duplication."""

from __future__ import annotations

import time
from pathlib import Path

from allsky_tasks.monitor.notify import Channels, append_message, webui_text

WHEN = time.strptime("2026-11-30 10:05:09", "%Y-%m-%d %H:%M:%S")


def test_line_has_addmessage_fields_and_escapes(tmp_path: Path) -> None:
    path = tmp_path / "messages.txt"
    line = append_message(path, "error", "disk 100% full\nsee  log\tnow", WHEN)
    assert line == ("\t\tdanger\tNovember 30, 10:05:09 AM\t1\t"
                    "disk 100&#37; full<br>see&nbsp;&nbsp;log&nbsp;&nbsp;&nbsp;&nbsp;now\t\n")
    assert path.read_text() == line


def test_same_message_replaces_its_line_with_count_plus_one(tmp_path: Path) -> None:
    path = tmp_path / "messages.txt"
    # Lines Allsky itself wrote (another message, with an id and a url) stay as they are.
    allsky = "camera\t\twarning\tNovember 29, 09:00:00 PM\t3\tCamera is slow\thttps://x\n"
    path.write_text(allsky)
    append_message(path, "warning", "backup skipped", WHEN)
    append_message(path, "warning", "backup skipped", WHEN)
    append_message(path, "warning", "backup skipped", WHEN)
    lines = path.read_text().splitlines(keepends=True)
    assert lines[0] == allsky and len(lines) == 2
    assert lines[1].split("\t")[2:6] == ["warning", "November 30, 10:05:09 AM", "3",
                                         "backup skipped"]


def test_messages_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "messages.txt"
    path.write_text("")
    path.chmod(0o664)
    append_message(path, "error", "x", WHEN)
    assert path.stat().st_mode & 0o777 == 0o664


def test_channels_from_environment() -> None:
    ch = Channels.from_environ({"ALLSKY_NOTIFY_URLS": "ntfy://a/b, json://h/p",
                                "ALLSKY_PING_URL": "https://hc-ping.com/u"})
    assert ch.urls == ("ntfy://a/b", "json://h/p") and ch.ping == "https://hc-ping.com/u"
    assert Channels.from_environ({}) == Channels()
    assert webui_text("a\nb") == "a<br>b"
