"""Place: staged members into the live tree, one rename per path, with the recorded owner/mode."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from ..archive.members import Member
from ..errors import RestoreError, os_message
from .dirs import DIR_FLAGS, DirChain
from .extract import AttrsFor
from .ownership import apply_attrs

SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")


class Placer:
    """Moves staged members into place: each path is the old or the new one, never half-written."""

    # Folders are merged; a file, symlink or folder where the archive has something else is moved
    # into the staging trash first; nothing in the live tree is ever followed, except the roots.

    def __init__(self, staging: Path, roots: dict[str, Path], attrs: AttrsFor,
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

    def live_path(self, member: Member) -> Path:
        """Where a member goes: below the home, or below the images root."""
        key, parts = self.target(member.path)
        return self.roots[key].joinpath(*parts)

    def _trash(self, parent: int, name: str) -> None:
        """Move what is in the way into the staging trash (removed with the staging folder)."""
        self.trashed += 1
        try:
            os.rename(name, str(self.trashed), src_dir_fd=parent, dst_dir_fd=self.fds["trash"])
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            os.unlink(name, dir_fd=parent)  # another filesystem: only non-folders get here

    def _make_dir(self, parent: int, name: str, path: str, member: Member | None = None) -> None:
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
                # Folders the archive does not hold (config/, config/overlay/ on an empty home)
                # get Allsky's mode below config/ (its installer: 775), else the parent's.
                mode = 0o775 if path == "config" or path.startswith("config/") else \
                    stat.S_IMODE(up.st_mode) & 0o3777
                apply_attrs(fd, mode, up.st_uid, up.st_gid, self.denied)
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
                where = self.live_path(member)
                raise RestoreError(f"cannot move {member.path} into place: {os_message(e, where)}",
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
                ns = member.time_ns
                os.utime(fd, ns=(ns, ns))
            except OSError as e:
                warnings.append(f"folder time not set: {os_message(e, member.path)}")
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
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=config)
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
