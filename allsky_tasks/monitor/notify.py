"""Someone is told: Allsky's WebUI System Messages, apprise URLs and a healthchecks-style ping.

Configured by environment (the schedule writes it into the unit): ALLSKY_NOTIFY_URLS (apprise
URLs, separated by spaces or commas) and ALLSKY_PING_URL (pinged at `/start`, on success at
the URL itself, on failure at `/fail`, as healthchecks.io and borgmatic do).
"""

from __future__ import annotations

import html
import logging
import os
import re
import stat
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..redact import redact, redact_url
from ..safefs import atomic_write_bytes

NOTIFY_ENV = "ALLSKY_NOTIFY_URLS"
PING_ENV = "ALLSKY_PING_URL"
MESSAGES = Path("config") / "messages.txt"
ADD_MESSAGE = Path("scripts") / "addMessage.sh"
# addMessage.sh's CSS classes for our types.
_CSS = {"error": "danger", "warning": "warning", "info": "info", "success": "success"}
TAB = "\t"


@dataclass(frozen=True)
class Channels:
    """Where notifications go besides the WebUI."""

    urls: tuple[str, ...] = ()
    ping: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Channels:
        """From ALLSKY_NOTIFY_URLS and ALLSKY_PING_URL."""
        env = os.environ if environ is None else environ
        urls = tuple(u for u in re.split(r"[\s,]+", env.get(NOTIFY_ENV, "")) if u)
        return cls(urls, env.get(PING_ENV) or None)


def webui_safe(message: str) -> str:
    """A message for Allsky's WebUI, which renders messages.txt as HTML: URL secrets hidden
    and every character HTML gives a meaning to escaped (`<`, `>`, `&`, quotes), so text from
    a file name, a server or an error can never become markup or a script."""
    return html.escape(redact(message), quote=True)


def webui_text(message: str) -> str:
    """The message as addMessage.sh stores it: escaped (webui_safe), <br> for newlines, &nbsp;
    for runs of spaces and tabs, &#37; for %, so it fits one tab-separated line."""
    text = "<br>".join(webui_safe(message).splitlines())
    text = text.replace("  ", "&nbsp;&nbsp;").replace(TAB, "&nbsp;" * 4)
    return text.replace("%", "&#37;")


def message_line(kind: str, text: str, count: int, when: time.struct_time) -> str:
    """One messages.txt line: id, cmd, type, date, count, message, url (addMessage.sh's order)."""
    date = time.strftime("%B %d, %I:%M:%S %p", when)  # `date '+%B %d, %r'` in the C locale
    return TAB.join(("", "", _CSS.get(kind, "info"), date, str(count), text, "")) + "\n"


def append_message(messages: Path, kind: str, message: str,
                   when: time.struct_time | None = None) -> str:
    """Add a line as addMessage.sh does: the same message again replaces its line, count + 1."""
    text = webui_text(message)
    try:
        info = os.lstat(messages)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{messages} is not a regular file")
        old = messages.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    except FileNotFoundError:
        info, old = None, []
    count, kept = 1, []
    for line in old:
        fields = line.rstrip("\n").split(TAB)
        if f"{TAB}{text}{TAB}" in line:
            if len(fields) >= 5 and fields[4].isdigit():
                count = int(fields[4]) + 1
            continue
        kept.append(line if line.endswith("\n") else line + "\n")
    line = message_line(kind, text, count, when or time.localtime())
    mode = stat.S_IMODE(info.st_mode) if info else 0o664
    atomic_write_bytes(messages, "".join([*kept, line]).encode(), mode)
    # The WebUI (www-data, group) reads and rewrites it: keep the owner the file (or config/) had.
    ref = info or os.stat(messages.parent)
    if os.geteuid() == 0:
        os.chown(messages, ref.st_uid, ref.st_gid, follow_symlinks=False)
    return line


def webui_message(home: Path, kind: str, message: str) -> str:
    """Tell the WebUI: Allsky's own addMessage.sh (from the Allsky home, never from the backup
    or state folders) when the install has it, else the same line written ourselves."""
    script = home / ADD_MESSAGE
    try:
        st = os.stat(script)
        runnable = stat.S_ISREG(st.st_mode) and os.access(script, os.X_OK)
    except OSError:
        runnable = False
    if runnable:
        try:
            # Escaped here: addMessage.sh writes the text as it gets it, and the WebUI renders it.
            proc = subprocess.run([str(script), "--type", kind, "--msg", webui_safe(message)],
                                  env={**os.environ, "ALLSKY_HOME": str(home)},
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            if proc.returncode == 0:
                return f"{script}"
        except (OSError, subprocess.TimeoutExpired):
            pass
    append_message(home / MESSAGES, kind, message)
    return str(home / MESSAGES)


def apprise_notify(urls: tuple[str, ...], title: str, body: str, kind: str) -> str | None:
    """Send through apprise; a problem description, or None when every URL took it."""
    if not urls:
        return None
    try:
        import apprise
    except ImportError:
        from ..environment import install_line

        return f"{NOTIFY_ENV} is set but apprise is not installed (install it: {install_line('notify')})"
    _quiet_apprise_secrets()
    sender = apprise.Apprise()
    bad = [u.split("://", 1)[0] + "://..." for u in urls if not sender.add(u)]
    types = {"error": apprise.NotifyType.FAILURE, "warning": apprise.NotifyType.WARNING}
    ok = sender.notify(title=redact(title), body=redact(body),
                       notify_type=types.get(kind, apprise.NotifyType.INFO))
    if bad:
        return f"apprise did not accept {', '.join(bad)}"
    return None if ok else "apprise could not deliver the notification to every URL"


def ping(url: str | None, event: str, body: str = "", timeout: float = 10.0) -> str | None:
    """healthchecks-style ping: start -> URL/start, success -> URL, fail -> URL/fail."""
    if not url:
        return None
    import urllib.request

    target = url.rstrip("/") + {"start": "/start", "success": "", "fail": "/fail"}[event]
    request = urllib.request.Request(target, data=redact(body).encode()[:10000], method="POST",
                                     headers={"User-Agent": "allsky-tasks"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(1024)
    except (OSError, ValueError) as e:
        # The URL's path is the check's secret (healthchecks' UUID): never in the journal.
        return f"ping {redact_url(target)} ({event}) failed: {redact(str(e))}"
    return None


class _RedactingFilter(logging.Filter):
    """apprise logs what it sends to (URLs with tokens) through logging: hidden first."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True


def _quiet_apprise_secrets() -> None:
    """Every apprise log line goes through _RedactingFilter (once per process)."""
    logger = logging.getLogger("apprise")
    if not any(isinstance(f, _RedactingFilter) for f in logger.filters):
        logger.addFilter(_RedactingFilter())
