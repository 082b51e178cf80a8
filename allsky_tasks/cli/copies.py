"""Copies in the CLI: `list` (where each backup's copies are), `list --target NAME`,
`verify --target NAME ARCHIVE` and `restore NAME --from TARGET`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..environment import Environment, spec_files
from ..errors import CopyError

# The key docs/copies.md tells the operator to make for the NAS: used by an ssh:// URL without
# ?key_file=, so the documented disaster command works as written on a new card.
DOCS_KEY = "~/.ssh/id_ed25519_backup"

if TYPE_CHECKING:
    from ..inventory.advice import Advice


def _cloud_url(text: str) -> dict[str, Any] | None:
    """`s3://bucket[/prefix][?endpoint_url=..&region=..&profile=..]` or `rclone:REMOTE:path`,
    so a fresh install without specs can restore from the cloud (credentials from the AWS chain
    or the rclone config, never the URL)."""
    if text.startswith("s3://"):
        url = urlsplit(text)
        if not url.hostname:
            raise CopyError(f"{text}: expected s3://bucket[/prefix][?endpoint_url=URL&region=R]")
        s3: dict[str, Any] = {"bucket": url.netloc, "prefix": unquote(url.path).strip("/")}
        for key, values in parse_qs(url.query).items():
            if key in ("endpoint_url", "region", "profile"):
                s3[key] = values[-1]
        return {"name": url.netloc, "s3": s3}
    if text.startswith("rclone:") and ":" in text[len("rclone:"):]:
        remote = text[len("rclone:"):]
        return {"name": remote.split(":", 1)[0], "rclone": remote}
    return None


def _from_url(text: str) -> dict[str, Any] | None:
    """`ssh://[user@]host[:port]/folder[?key_file=..&known_hosts=..]` or a folder path."""
    cloud = _cloud_url(text)
    if cloud is not None:
        return cloud
    if text.startswith("ssh://"):
        url = urlsplit(text)
        if not url.hostname or not url.path:
            raise CopyError(f"{text}: expected ssh://[user@]host[:port]/folder")
        ssh: dict[str, Any] = {"host": url.hostname, "folder": unquote(url.path)}
        if ssh["folder"].startswith("/~/"):
            ssh["folder"] = ssh["folder"][3:]  # ssh://host/~/backups: relative to the home
        if url.port:
            ssh["port"] = url.port
        if url.username:
            ssh["user"] = url.username
        for key, values in parse_qs(url.query).items():
            if key in ("key_file", "known_hosts"):
                ssh[key] = values[-1]
        if "key_file" not in ssh and Path(DOCS_KEY).expanduser().is_file():
            ssh["key_file"] = DOCS_KEY  # the NAS key docs/copies.md makes, when it exists
        return {"name": url.hostname, "ssh": ssh}
    if text.startswith("/"):
        return {"name": Path(text).name or "disk", "path": text, "must_be_mounted": False}
    return None


def find_item(env: Environment, name: str) -> dict[str, Any]:
    """The `copies:` item called NAME in the specs (or one given as a URL or folder)."""
    from ..spec.load import read_yaml

    direct = _from_url(name)
    if direct is not None:
        return direct
    known = []
    for path in spec_files(env.specs_dir):
        try:
            data = read_yaml(path)
        except Exception:  # noqa: BLE001 - a broken spec must not hide the others' targets
            continue
        for item in (data or {}).get("copies", []) if isinstance(data, dict) else []:
            if isinstance(item, dict):
                if item.get("name") == name:
                    return item
                known.append(str(item.get("name")))
    raise CopyError(f"no copy target {name!r} in the specs in {env.specs_dir}",
                    hint=f"known targets: {', '.join(sorted(set(known))) or 'none'}; or give "
                         "ssh://user@host[:port]/folder or a folder path")


def target_for(env: Environment, name: str) -> Any:
    """The Target object for a name, URL or folder."""
    from ..copies.stage import make_target

    return make_target(find_item(env, name), env.home, "cli", env.state_dir)


def copies_lines(dest: Path, names: list[str]) -> list[str]:
    """For `list`: each backup's copies and whether each one verified."""
    from ..copies import records

    recs = records.all_records(dest)
    if not recs:
        return []
    out = ["", "Copies"]
    for name in names:
        found = records.entries_for(recs, name)
        if not found:
            continue
        where = ", ".join(f"{t}: " + ("verified " + e.get("verifiedAt", "") if e.get("ok")
                                      else f"FAILED ({e.get('problem') or 'not verified'})")
                          for t, e in found)
        out.append(f"  {name}: {where}")
    return out if len(out) > 2 else []


def drop_solved_advice(warnings: list[Advice], dest: Path, names: list[str]) -> list[Advice]:
    """No "same filesystem as the home" advice when the newest config backup has a verified copy."""
    from ..copies import records

    configs = [n for n in names if n.startswith("allsky-config-")]
    if not configs:
        return warnings
    copied = any(e.get("ok") for _, e in records.entries_for(records.all_records(dest),
                                                             configs[0]))
    return [w for w in warnings if not (copied and "same filesystem" in w.message)]


def cmd_list_target(args: argparse.Namespace, env: Environment, dest: Path) -> int:
    """What a target holds, also backups whose local archive is gone."""
    from ..copies import records

    item = find_item(env, args.target)
    target = target_for(env, args.target)
    try:
        target.check_ready()
        files = {f.name: f.size for f in target.list_files()}
    finally:
        close = getattr(target, "close", None)
        if close is not None:
            close()
    entries = {e["stored"]: e for r in records.for_target(dest, target.name, item)
               for e in r["copies"].values()}
    rows = []
    for stored in sorted(files):
        if stored.startswith(".") or ".tar." not in stored or stored.endswith(".auth"):
            continue
        entry = entries.get(stored)
        local = (dest / entry["archive"]).exists() if entry else (dest / stored).exists()
        status = ("not recorded here" if entry is None else
                  "verified " + entry.get("verifiedAt", "") if entry.get("ok") else
                  "FAILED: " + str(entry.get("problem")))
        if entry is not None and files[stored] != entry.get("storedSize"):
            status = f"SIZE CHANGED ({files[stored]} bytes, recorded {entry.get('storedSize')})"
        rows.append({"name": stored, "size": files[stored], "status": status,
                     "local": "yes" if local else "no (local archive gone)"})
    if args.json:
        print(json.dumps({"target": target.describe(), "copies": rows}, indent=2))
        return 0
    print(f"Copies at {target.describe()}: {len(rows)}")
    for r in rows:
        print(f"  {r['name']}  {r['size']} bytes  {r['status']}  local: {r['local']}")
    return 0


def cmd_verify_target(args: argparse.Namespace, env: Environment, dest: Path) -> int:
    """Re-read one copy at a target; exit 22 when it does not match."""
    from ..copies.stage import verify_copy

    item = find_item(env, args.target)
    target = target_for(env, args.target)
    name = Path(args.archive).name
    entry = verify_copy(target, dest, name, item=item)
    if not entry["ok"]:
        raise CopyError(f"copy target {target.describe()}: {name}: {entry['problem']}",
                        hint="the copy is damaged; run the backup again to copy it anew "
                             "(delete the damaged copy at the target first)")
    print(f"verify {name} at {target.describe()}: ok ({entry['method']}, "
          f"sha256 {entry['storedSha256'][:16]}...)")
    return 0


def fetch_for_restore(env: Environment, source: str, name: str, backup_dir: Path,
                      identity: str | None = None, auth_key: str | None = None,
                      trust_target: bool = False) -> Path:
    """`restore NAME --from TARGET`: the fetched, checked, imported local archive."""
    from ..copies.auth import restore_key
    from ..progress import tracked
    from ..restore.fetch import fetch

    item = find_item(env, source)
    key = None if trust_target else restore_key(
        Path(auth_key) if auth_key else None, Path(identity) if identity else None)
    # An encrypted target needs --identity; it decrypts while the copy streams in.
    decryptor = None
    if identity is not None:
        from ..copies.encrypt import decryptor as make_decryptor

        decryptor = make_decryptor(Path(identity).expanduser())
    elif item.get("encrypt"):
        from ..errors import EncryptionError

        raise EncryptionError(f"copy target {source!r} holds age-encrypted copies; nothing was fetched",
                              hint="pass --identity FILE (the identity `allsky-tasks keygen` wrote)")
    from ..copies.stage import make_target

    target = make_target(item, env.home, "cli", env.state_dir)
    from ..errors import EncryptionError

    with tracked(name, "import") as progress:
        try:
            path = fetch(target, name, backup_dir, on_bytes=lambda n: progress.update(n, name),
                         decryptor=decryptor, key=key, trust_target=trust_target)
        except EncryptionError as e:  # name the target: which copy is damaged or locked
            raise EncryptionError(f"copy target {target.describe()}: {e.message}", hint=e.hint) from None
        progress.finish(archive=str(path))
    if trust_target:
        print(f"WARNING: --trust-target: {path.name} from {target.describe()} was not checked "
              "against an authentication key; whoever can write there could have made it")
        how = "checked as an import"
    else:
        how = f"authenticated (key {key.fingerprint if key else '?'}) and checked"
    print(f"fetched {path.name} from {target.describe()}: {how}, stored as {path}")
    return path
