"""Place: staged members into the live tree, one rename per path, with the recorded owner/mode."""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
from pathlib import Path
from typing import Any, Callable

from .. import install
from ..errors import RestoreError
from .dirs import DIR_FLAGS, DirChain
from .extract import Attrs
from ..archive.verify import Member, manifest_of

_MODE_TEXT = frozenset("01234567")
SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")


class Ownership:
    """Owner, group and mode of each member: from our manifest, else Allsky's permissions map."""

    def __init__(self, metadata: dict[str, Any], home: Path) -> None:
        rows = manifest_of(metadata) or []
        self.rows = {r.get("path"): r for r in rows if isinstance(r, dict)}
        perms = metadata.get("permissions")
        self.perms = perms if isinstance(perms, dict) else {}
        st = os.stat(home)
        self.home_ids = (st.st_uid, st.st_gid)  # for "ALLSKY_OWNER" and unknown names
        self.owner = install.read_owner(home)
        self.warnings: list[str] = []
        self._ids: dict[tuple[str, str], int] = {}

    def __call__(self, member: Member) -> Attrs:
        """(mode or None for a symlink, uid, gid) to give the restored member."""
        row = self.rows.get(member.path) or self.perms.get(member.path)
        row = row if isinstance(row, dict) else {}
        text = row.get("mode")
        ok = isinstance(text, str) and 3 <= len(text) <= 4 and set(text) <= _MODE_TEXT
        mode = self._mode(member, int(text, 8) if ok else int(member.mode, 8))
        return mode, self._id(row.get("owner"), "user"), self._id(row.get("group"), "group")

    def _warn(self, text: str) -> None:
        """Each warning once."""
        if text not in self.warnings:
            self.warnings.append(text)

    def _mode(self, member: Member, mode: int) -> int | None:
        """Files lose set-ID/sticky bits; folders keep setgid and sticky; symlinks get none."""
        if member.type == "symlink":
            return None
        keep = 0o3777 if member.type == "dir" else 0o777
        if mode & ~keep & 0o7777:
            self._warn(f"{member.path}: mode {mode & 0o7777:04o} restored as "
                       f"{mode & keep:04o} (special bits are not restored on a {member.type})")
        return mode & keep

    def _id(self, name: Any, kind: str) -> int:
        """A user/group name (or ALLSKY_OWNER, or a number) as an id here; unknown: the home's."""
        fallback = self.home_ids[0 if kind == "user" else 1]
        if not isinstance(name, str) or not name:
            return fallback
        if name == "ALLSKY_OWNER":
            name = self.owner or ""
            if not name:
                return fallback
        if name.isdigit():
            return int(name)
        if (kind, name) not in self._ids:
            try:
                found = pwd.getpwnam(name).pw_uid if kind == "user" else grp.getgrnam(name).gr_gid
            except KeyError:
                self._warn(f"{kind} {name!r} does not exist here; its files get the Allsky "
                           f"home's {kind} instead")
                found = fallback
            self._ids[(kind, name)] = found
        return self._ids[(kind, name)]


def apply_attrs(fd: int, mode: int | None, uid: int, gid: int, denied: dict[str, int]) -> None:
    """Owner then mode on an open folder (chown clears set-ID bits, so it goes first)."""
    st = os.fstat(fd)
    if uid not in (-1, st.st_uid) or gid not in (-1, st.st_gid):
        try:
            os.fchown(fd, uid, gid)
        except PermissionError:
            denied[f"{uid}:{gid}"] = denied.get(f"{uid}:{gid}", 0) + 1
    if mode is not None and stat.S_IMODE(os.fstat(fd).st_mode) != mode:
        os.fchmod(fd, mode)


class Placer:
    """Moves staged members into place: each path is the old or the new one, never half-written."""

    # Folders are merged; a file, symlink or folder where the archive has something else is moved
    # into the staging trash first; nothing in the live tree is ever followed, except the roots.

    def __init__(self, staging: Path, roots: dict[str, Path], attrs: Ownership,
                 resume: bool = False, on_placed: Callable[[int], None] | None = None) -> None:
        self.attrs, self.roots = attrs, roots
        # resume: finishing a killed placement (see journal.py); what is no longer staged is done.
        self.resume, self.already, self.on_placed = resume, 0, on_placed
        self.fds = {key: os.open(path, os.O_RDONLY | os.O_DIRECTORY) for key, path in roots.items()}
        self.fds["tree"] = os.open(staging / "tree", DIR_FLAGS)
        self.fds["trash"] = os.open(staging / "trash", DIR_FLAGS)
        self.chains = {key: DirChain(self.fds[key], self._make_dir) for key in roots}
        self.chains["tree"] = DirChain(self.fds["tree"])  # staged parents exist: never create
        self.trashed = 0
        self.stale_sqlite: list[str] = []  # old -journal/-wal/-shm moved aside
        self.denied: dict[str, int] = {}
        self.placed: list[str] = []

    @staticmethod
    def target(path: str) -> tuple[str, list[str]]:
        """(root key, parts below it): images/... goes below the images root."""
        parts = path.split("/")
        return ("images", parts[1:]) if parts[0] == "images" else ("home", parts)

    def _trash(self, parent: int, name: str) -> None:
        """Move what is in the way into the staging trash (removed with the staging folder)."""
        self.trashed += 1
        try:
            os.rename(name, str(self.trashed), src_dir_fd=parent, dst_dir_fd=self.fds["trash"])
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            os.unlink(name, dir_fd=parent)  # another filesystem: only non-folders get here

    def _make_dir(self, parent: int, name: str, _path: str, member: Member | None = None) -> None:
        """A real folder at parent/name: owner/mode from the member, else from the parent."""
        try:
            st: os.stat_result | None = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISDIR(st.st_mode):
            self._trash(parent, name)  # a symlink is replaced, never followed
        if st is None or not stat.S_ISDIR(st.st_mode):
            os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, DIR_FLAGS, dir_fd=parent)
        try:
            if member is not None:
                mode, uid, gid = self.attrs(member)
                # Owner rwx until finish_dirs: a read-only folder must still take its files.
                apply_attrs(fd, None if mode is None else mode | 0o700, uid, gid, self.denied)
            elif st is None or not stat.S_ISDIR(st.st_mode):
                up = os.fstat(parent)
                apply_attrs(fd, stat.S_IMODE(up.st_mode) & 0o3777, up.st_uid, up.st_gid,
                            self.denied)
        finally:
            os.close(fd)

    def place(self, written: list[Member]) -> list[str]:
        """Move every written member into place, parents first; returns the paths placed."""
        for member in sorted(written, key=lambda m: m.path.split("/")):
            key, parts = self.target(member.path)
            if not parts:
                continue  # the images root itself is the operator's (maybe a USB mount)
            try:
                self._place_one(member, self.chains[key].at(parts[:-1]), parts[-1])
            except OSError as e:
                raise RestoreError(f"cannot move {member.path} into place: {e.strerror or e}",
                                   hint="every path moved so far is complete; the undo backup "
                                        "restores the previous state") from e
            self.placed.append(member.path)
            if self.on_placed is not None:
                self.on_placed(len(self.placed))
        return self.placed

    def _place_one(self, member: Member, live: int, name: str) -> None:
        """One member: a folder is made or merged, anything else replaces what is there."""
        if member.type == "dir":
            self._make_dir(live, name, member.path, member)
            return
        staged = self.chains["tree"].at(member.path.split("/")[:-1])
        if self.resume:
            try:
                os.stat(name, dir_fd=staged, follow_symlinks=False)
            except FileNotFoundError:
                self.already += 1  # moved before the interruption
                return
        try:
            if stat.S_ISDIR(os.stat(name, dir_fd=live, follow_symlinks=False).st_mode):
                self._trash(live, name)
        except FileNotFoundError:
            pass
        if member.type == "file":
            self._stale_sqlite_files(staged, live, name, member.path)
        os.replace(name, name, src_dir_fd=staged, dst_dir_fd=live)

    def _stale_sqlite_files(self, staged: int, live: int, name: str, path: str) -> None:
        """Move aside the old database's -journal/-wal/-shm before a restored database lands.

        SQLite would replay a stale hot journal (or WAL) over the restored file on its first
        open: silent damage. They go to the staging trash, removed with it.
        """
        present = []
        for suffix in SQLITE_SIDE_FILES:
            try:
                os.stat(name + suffix, dir_fd=live, follow_symlinks=False)
                present.append(name + suffix)
            except FileNotFoundError:
                continue
        if not present:
            return
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=staged)
        except OSError:
            return
        try:
            is_db = os.pread(fd, 16, 0) == SQLITE_MAGIC
        finally:
            os.close(fd)
        if is_db:
            for side in present:
                self._trash(live, side)
                self.stale_sqlite.append(path + side[len(name):])

    def finish_dirs(self, written: list[Member]) -> list[str]:
        """Folder modes and times last, deepest first (moving files in changed them)."""
        warnings = []
        for member in sorted((m for m in written if m.type == "dir"),
                             key=lambda m: m.path.count("/"), reverse=True):
            key, parts = self.target(member.path)
            if not parts:
                continue
            chain = DirChain(self.fds[key])  # no creating now: only what is there
            try:
                fd = chain.at(parts)
                apply_attrs(fd, self.attrs(member)[0], -1, -1, self.denied)
                ns = member.mtime * 1_000_000_000
                os.utime(fd, ns=(ns, ns))
            except OSError as e:
                warnings.append(f"{member.path}: folder time not set: {e.strerror}")
            finally:
                chain.close()
        return warnings + [f"could not set owner {ids} on {n} folder(s): not permitted"
                           for ids, n in self.denied.items()]

    def relink(self, settingsfile: str, ccfile: str) -> list[str]:
        """config/settings.json and cc.json as hard links to the restored camera files."""
        done = []
        config = self.chains["home"].at(["config"])
        for live, name in (("settings.json", settingsfile), ("cc.json", ccfile)):
            if name not in self.placed:
                continue
            tmp = f".{live}.restore-{os.getpid()}"
            try:
                os.unlink(tmp, dir_fd=config)
            except FileNotFoundError:
                pass
            os.link(name.split("/")[-1], tmp, src_dir_fd=config, dst_dir_fd=config,
                    follow_symlinks=False)
            os.replace(tmp, live, src_dir_fd=config, dst_dir_fd=config)
            done.append(f"config/{live}")
        return done

    def close(self) -> None:
        """Close every folder fd."""
        for chain in self.chains.values():
            chain.close()
        for fd in self.fds.values():
            os.close(fd)


def _live_state(root: Path, parts: list[str]) -> str:
    """missing | dir | file | symlink at root/parts, never following."""
    # Below an ancestor that is not a folder everything is missing: it is replaced by a folder.
    path = root
    for i, part in enumerate(parts):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return "missing"
        if not stat.S_ISDIR(mode):
            return "missing" if i < len(parts) - 1 else \
                "symlink" if stat.S_ISLNK(mode) else "file"
    return "dir"


def _same_as_live(m: Member, live: Path, state: str) -> bool:
    """The live file already holds exactly this member (same SHA-256, or same link target)."""
    import hashlib

    if state == "symlink" and m.type == "symlink":
        try:
            return os.readlink(live) == m.linkname
        except OSError:
            return False
    if state != "file" or m.type != "file" or not m.sha256:
        return False
    try:
        fd = os.open(live, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size != m.size:
            return False
        digest = hashlib.sha256()
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest() == m.sha256


def plan(members: list[Member], roots: dict[str, Path]) -> list[tuple[str, str, int]]:
    """What place() would do: (create | replace | unchanged | merge | keep, path, size).

    unchanged: the live file already has the member's bytes (restoring it changes nothing).
    Nothing is written."""
    # keep: a file in a restored folder that the backup does not have (restores never delete).
    rows, chosen = [], {m.path for m in members}
    for m in sorted(members, key=lambda m: m.path.split("/")):
        key, parts = Placer.target(m.path)
        if not parts:
            continue
        state = _live_state(roots[key], parts)
        action = "create" if state == "missing" else \
            "merge" if state == "dir" and m.type == "dir" else "replace"
        if action == "replace" and _same_as_live(m, roots[key].joinpath(*parts), state):
            action = "unchanged"
        rows.append((action, m.path, m.size))
        if action == "merge" and m.path.rsplit("/", 1)[0] not in chosen:  # a top folder
            for dirpath, dirs, files in os.walk(roots[key].joinpath(*parts)):
                for name in sorted(dirs + files):
                    st = os.lstat(Path(dirpath, name))
                    rel = Path(dirpath, name).relative_to(roots[key]).as_posix()
                    rel = f"images/{rel}" if key == "images" else rel
                    if rel not in chosen and not stat.S_ISDIR(st.st_mode):
                        rows.append(("keep", rel, st.st_size))
    return rows
