"""Secrets out of messages: URLs (userinfo, path, query) and rclone connection-string options.

A healthchecks ping URL carries its secret in the path (`https://hc-ping.com/<uuid>`), apprise
URLs carry tokens anywhere (`tgram://<bot token>/<chat>`, `mailto://user:pass@host`), and an
rclone remote may carry credentials inline (`:s3,secret_access_key=...:bucket`). Whatever
can hold one is shown through these functions before it reaches a terminal, the journal, a
run record or the WebUI.
"""

from __future__ import annotations

import re

__all__ = ["redact", "redact_remote", "redact_url"]

HIDDEN = "***"
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<userinfo>[^\s/?#@]*@)?"
                  r"(?P<host>[^\s/?#'\"<>]*)(?P<rest>[^\s'\"<>]*)")
# For http(s) the host is an address; for other schemes (apprise: tgram://TOKEN/CHAT,
# discord://ID/TOKEN) the "host" is often the secret itself.
_ADDRESS_SCHEMES = ("http", "https", "ws", "wss", "ftp", "ftps", "sftp", "ssh", "s3")
# rclone `remote,key=value:` / `:backend,key=value:` options, quoted values included.
_OPTION = re.compile(r"(?P<key>,[A-Za-z0-9_]+)=(?P<value>'[^']*'|\"[^\"]*\"|[^,:]*)")


def _url(match: re.Match[str]) -> str:
    scheme, rest = match["scheme"], match["rest"]
    host = match["host"] if scheme.lower() in _ADDRESS_SCHEMES else (HIDDEN if match["host"] else "")
    user = f"{HIDDEN}@" if match["userinfo"] else ""
    tail = f"/{HIDDEN}" if rest.strip("/") else rest
    return f"{scheme}://{user}{host}{tail}"


def redact_url(text: str) -> str:
    """Every URL in `text` with its userinfo, path and query hidden: `https://hc-ping.com/***`."""
    return _URL.sub(_url, text)


def redact_remote(remote: str) -> str:
    """An rclone `remote:path` with inline option values hidden: `:s3,secret_access_key=***:b`."""
    head, sep, path = _split_remote(remote)
    return _OPTION.sub(lambda m: f"{m['key']}={HIDDEN}", head) + sep + path


def _split_remote(remote: str) -> tuple[str, str, str]:
    """(`remote[,options]` or `:backend[,options]`, ':', path), quotes respected."""
    quote, start = "", 1 if remote.startswith(":") else 0
    for i in range(start, len(remote)):
        ch = remote[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == ":":
            return remote[:i], ":", remote[i + 1:]
    return remote, "", ""


def redact(text: str) -> str:
    """`text` with every URL redacted, and rclone option values (`,key=value`) hidden."""
    text = redact_url(text)
    return re.sub(r"(?<![\w/])(:?[A-Za-z0-9_.-]*(?:,[A-Za-z0-9_]+=(?:'[^']*'|\"[^\"]*\"|[^,:\s]*))+:)",
                  lambda m: redact_remote(m[1]), text)
