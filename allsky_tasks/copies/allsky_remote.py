"""`allsky_remote: server|website`: copies to the Remote Server/Website already set up in Allsky's WebUI.

Allsky keeps the protocol in `config/settings.json` (`remoteserverprotocol`,
`remotewebsiteprotocol`) and host, port, user, password, SSH key file and S3 bucket in
`env.json` (`REMOTESERVER_*`, `REMOTEWEBSITE_*`), as its `scripts/upload.sh` reads them. This
module reads them (never copies them anywhere) and builds the matching target: sftp, scp and
rsync through the SSH target, s3 through the S3 target, ftp and ftps through ftplib. Copies go
to `folder:` (default `allskybackups`, relative to the login's home or the bucket root), not
to the image folder, which the web server publishes.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..environment import SCHEMA_PATH
from ..errors import CopyError
from .target import Target

DEFAULT_FOLDER = "allskybackups"
WHICH = {"server": ("remoteserver", "REMOTESERVER", "Remote Server"),
         "website": ("remotewebsite", "REMOTEWEBSITE", "Remote Website")}
SSH_PROTOCOLS = ("sftp", "scp", "rsync")
# WebUI labels of the env.json keys, so a missing one is named as the operator sees it.
LABELS = {"HOST": "Server Name", "PORT": "Port", "USER": "User Name", "PASSWORD": "Password",
          "SSH_KEY_FILE": "SSH Key File", "S3_BUCKET": "S3 Bucket"}


def _load(path: Path, what: str, name: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CopyError(f"copy target {name}: {path} is missing; the {what} cannot be read",
                        hint="set the Remote Server up in Allsky's WebUI first (after a fresh "
                             "install, enter it again), or restore with --from ssh://user@host/folder") from None
    except (OSError, ValueError) as exc:
        raise CopyError(f"copy target {name}: {path} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise CopyError(f"copy target {name}: {path} is not a JSON object")
    return data


def _options(item: Mapping[str, Any]) -> dict[str, Any]:
    raw = item["allsky_remote"]
    return {"use": raw} if isinstance(raw, str) else dict(raw)


def remote_settings(home: Path, which: str, name: str = "allsky_remote") -> dict[str, Any]:
    """The protocol, image folder and REMOTE*_ keys Allsky's WebUI saved for `server` or `website`."""
    if which not in WHICH:
        raise CopyError(f"copy target {name}: allsky_remote is {which!r}; use server or website")
    skey, ekey, label = WHICH[which]
    settings = _load(home / "config" / "settings.json", "protocol", name)
    env = _load(home / "env.json", f"{label} settings", name)
    out = {"label": label, "protocol": str(settings.get(f"{skey}protocol") or "").strip().lower(),
           "imagedir": str(settings.get(f"{skey}imagedir") or ""),
           "enabled": bool(settings.get(f"use{skey}", False))}
    for key in LABELS:
        out[key] = str(env.get(f"{ekey}_{key}") or "").strip()
    return out


def _require(s: Mapping[str, Any], keys: tuple[str, ...], which: str, name: str) -> None:
    ekey = WHICH[which][1]
    missing = [k for k in keys if not s.get(k)]
    if missing:
        shown = ", ".join(f"{LABELS[k]} ({ekey}_{k} in env.json)" for k in missing)
        raise CopyError(f"copy target {name}: Allsky's {s['label']} settings lack {shown} "
                        f"for protocol {s['protocol']}",
                        hint=f"fill it in under WebUI > Allsky Settings > {s['label']} Settings")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@functools.cache
def _spec_rules() -> dict[str, str]:
    """The spec's own patterns (schema) for the same values: one rule for both sources."""
    defs = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))["$defs"]
    ssh, s3 = defs["sshTarget"]["properties"], defs["s3Target"]["properties"]
    return {"HOST": ssh["host"]["pattern"], "USER": ssh["user"]["pattern"],
            "S3_BUCKET": s3["bucket"]["pattern"]}


def _value_problem(key: str, value: str, proto: str) -> str | None:
    """Why one env.json value cannot be used as it stands, or None (same rules as a spec's)."""
    rules = _spec_rules()
    if _CONTROL.search(value):
        return "holds a control character (a newline?)"
    if key == "HOST":
        if not re.search(rules["HOST"], value):
            return "is not a host name (no spaces, '@' or '/', and it must not start with '-')"
        try:
            value.encode("idna")  # what the resolver (and ftplib) will do with it
        except UnicodeError as e:
            return f"is not a valid host name ({e})"
    if key == "USER" and proto in SSH_PROTOCOLS and not re.search(rules["USER"], value):
        return "is not a login name (letters, digits, '.', '_', '-'; not starting with '-')"
    if key == "PORT" and not (value.isascii() and value.isdigit() and 1 <= int(value) <= 65535):
        return "is not a port number (1-65535)"
    if key == "S3_BUCKET" and not re.search(rules["S3_BUCKET"], value):
        return "is not an S3 bucket name (3-255 letters, digits, '.', '_', '-')"
    return None


def _check_values(s: Mapping[str, Any], keys: tuple[str, ...], which: str, name: str) -> None:
    """Allsky's settings are inputs too: each value the target uses, checked before any use."""
    ekey = WHICH[which][1]
    for key in keys:
        value = str(s.get(key) or "")
        why = _value_problem(key, value, s["protocol"]) if value else None
        if why:
            shown = "(the value is not shown)" if key == "PASSWORD" else repr(value)
            raise CopyError(f"copy target {name}: Allsky's {s['label']} setting {LABELS[key]} "
                            f"({ekey}_{key} in env.json) {shown} {why}",
                            hint=f"correct it under WebUI > Allsky Settings > {s['label']} Settings")


def AllskyRemoteTarget(item: Mapping[str, Any], context: Mapping[str, Any]) -> Target:  # noqa: N802
    """Build the target Allsky's own Remote Server/Website settings describe (KINDS factory)."""
    name = str(item.get("name") or "allsky_remote")
    opts = _options(item)
    which = str(opts.get("use") or "server")
    home = Path(context["home"])
    s = remote_settings(home, which, name)
    proto = s["protocol"]
    folder = str(opts.get("folder") or DEFAULT_FOLDER)
    skey = WHICH[which][0]
    if not proto:
        raise CopyError(f"copy target {name}: Allsky's {s['label']} Protocol ({skey}protocol in "
                        f"{home / 'config/settings.json'}) is not set",
                        hint=f"choose a protocol under WebUI > Allsky Settings > {s['label']} Settings")
    if proto in SSH_PROTOCOLS:
        _check_values(s, ("HOST", "PORT", "USER", "SSH_KEY_FILE"), which, name)
    elif proto in ("ftp", "ftps"):
        _check_values(s, ("HOST", "PORT", "USER", "PASSWORD"), which, name)
    elif proto == "s3":
        _check_values(s, ("S3_BUCKET",), which, name)
    port = int(s["PORT"]) if s["PORT"] else None
    if proto in SSH_PROTOCOLS:
        # Allsky's scp always uses the key file; sftp may log in with the key from ~/.ssh.
        _require(s, ("HOST", "SSH_KEY_FILE") if proto != "sftp" else ("HOST",), which, name)
        from .ssh import SshTarget

        ssh = {"host": s["HOST"], "folder": folder, "port": port, "user": s["USER"] or None,
               "key_file": s["SSH_KEY_FILE"] or None, "known_hosts": opts.get("known_hosts")}
        return SshTarget({"name": name, "ssh": {k: v for k, v in ssh.items() if v}}, context)
    if proto == "s3":
        _require(s, ("S3_BUCKET",), which, name)
        from .s3 import S3Target

        cfg = {"bucket": s["S3_BUCKET"], "prefix": folder}
        cfg.update({k: opts[k] for k in ("endpoint_url", "region", "storage_class", "profile") if opts.get(k)})
        return S3Target({"name": name, "s3": cfg}, context)
    if proto in ("ftp", "ftps"):
        _require(s, ("HOST", "USER", "PASSWORD"), which, name)
        from .ftp import FtpTarget

        return FtpTarget(name, s["HOST"], s["USER"], s["PASSWORD"], folder, port, tls=proto == "ftps",
                         source=f"{home / 'env.json'} ({WHICH[which][1]}_USER/_PASSWORD)")
    raise CopyError(f"copy target {name}: Allsky's {s['label']} protocol {proto!r} is not supported "
                    f"for backups (sftp, scp, rsync, s3, ftp, ftps are)",
                    hint="use an rclone: target for this storage")
