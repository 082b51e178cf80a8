"""Writing the demo tree's files with Allsky's modes and distinct, increasing install-time mtimes."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["CONFIG_DIR", "CONFIG_FILE", "IMAGE_DIR", "IMAGE_FILE", "SECRET_FILE", "Writer", "finish_dirs"]

CONFIG_FILE, CONFIG_DIR = 0o664, 0o775  # what Allsky's installer sets under config/
IMAGE_FILE, IMAGE_DIR = 0o644, 0o755  # what capture/saveImage.sh leave with a 022 umask
SECRET_FILE = 0o600


class Writer:
    """Writes files under one root with explicit modes and distinct, increasing 'install-time' mtimes."""

    def __init__(self, root: Path, installed: datetime) -> None:
        """Remember the root and start the clock used for config-like files."""
        self.root, self.clock = root, installed.timestamp()

    def write(self, rel: str, data: bytes | str | dict[str, Any], mode: int = CONFIG_FILE,
              mtime: float | None = None) -> Path:
        """Write one file (dicts become indented JSON) and set its mode and mtime."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(data, indent=4) + "\n" if isinstance(data, dict) else data
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        os.chmod(path, mode)
        if mtime is None:
            self.clock += 433  # minutes apart, so every config file has its own mtime
        when = self.clock if mtime is None else mtime
        os.utime(path, (when, when))
        return path


def finish_dirs(root: Path, mode: int, empty_mtime: float) -> None:
    """Bottom-up: dir modes (775 under config/, else `mode`) and mtime = that of the newest entry."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        path = Path(dirpath)
        os.chmod(path, CONFIG_DIR if path.relative_to(root).parts[:1] == ("config",) else mode)
        newest = max((os.lstat(path / n).st_mtime for n in dirnames + filenames), default=empty_mtime)
        os.utime(path, (newest, newest))
