"""Images archives as Allsky's own backup makes them: GNU tar over the folders, metadata.json last.

GNU tar stores the second name of a file with two names (a hard link) as a link member naming
the first, exactly as in an archive Allsky's WebUI writes of such a night.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["allsky_images_archive"]


def _permission(path: Path) -> dict[str, Any] | None:
    """Allsky's permissions entry (PHP fileperms/fileowner follow links), None if unreadable."""
    try:
        st = path.stat()
    except OSError:
        return None
    kind = "link" if path.is_symlink() else "dir" if stat.S_ISDIR(st.st_mode) else "file"
    return {"mode": f"{st.st_mode & 0o7777:04o}", "owner": str(st.st_uid), "group": str(st.st_gid),
            "ownerId": st.st_uid, "groupId": st.st_gid, "type": kind}


def allsky_images_archive(home: Path, dest: Path, folders: list[str], when: datetime) -> Path:
    """An Allsky images backup of `folders` of home/images, named and stamped for `when`."""
    name = f"allsky-images-backup-{when:%Y%m%d-%H%M%S}.tar.gz"
    targets = [f"images/{f}" for f in folders]
    perms: dict[str, Any] = {}
    files: list[str] = []
    for target in targets:
        for dirpath, dirnames, filenames in os.walk(home / target):
            base = Path(dirpath)
            entry = _permission(base)
            if entry is not None:
                perms[base.relative_to(home).as_posix()] = entry
            for child in dirnames + filenames:
                rel = (base / child).relative_to(home).as_posix()
                entry = _permission(base / child)
                if entry is not None:
                    perms[rel] = entry
                if child in filenames or (base / child).is_symlink():
                    files.append(rel)
    meta = {"backupFile": name, "backupType": "images", "created": f"{when:%Y-%m-%d %H:%M:%S}",
            "version": "v2025.xx.xx", "permissions": dict(sorted(perms.items())),
            "files": sorted(files), "includedOptionalTargets": [],
            "includedSections": [{"key": "images", "description": "Images Folder",
                                  "shortdescription": "Images Folder", "required": True}],
            "imageBackupAll": False, "imageFolders": folders, "imageTargets": targets,
            "format": 1}
    work = dest / ".allsky-made"
    work.mkdir(parents=True, exist_ok=True)
    (work / "metadata.json").write_text(json.dumps(meta, indent=4))
    archive = dest / name
    subprocess.run(["tar", "-czf", str(archive), "-C", str(home), *targets,
                    "-C", str(work), "metadata.json"], check=True)
    (work / "metadata.json").unlink()
    work.rmdir()
    return archive
