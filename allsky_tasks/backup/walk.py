"""The stat-only walk behind a scan: one JSON row per member, hashed as written."""

from __future__ import annotations

import hashlib
import operator
import os
import stat
from pathlib import Path
from typing import IO

from ..errors import ScanError, os_message
from .entry import Entry, Stats, json_str
from .walk_rules import (
    ALWAYS_EXCLUDED,
    DB_SUFFIXES,
    JOURNAL_SUFFIXES,
    exclusion,
    is_journal,
    link_escapes,
    loops,
    shown,
    unsafe_name,
)

# Rows are hashed and written in blocks of this many lines: one hash update per block instead
# of two per member, while memory stays flat however many files a folder holds.
_BLOCK_LINES = 1024
by_name = operator.attrgetter("name")


class Walker:
    """Walks roots depth-first in sorted order, writing rows and hashing them."""

    def __init__(self, out: IO[str], excludes: tuple[str, ...], policy: str) -> None:
        self.out = out
        self.set_excludes(excludes)
        self.policy = policy
        self.hash = hashlib.sha256()
        self.section_hashes: dict[str, hashlib._Hash] = {}
        self.seen: set[str] = set()
        self.dedupe = True  # sections may overlap; night folders never do
        self.stats: dict[str, Stats] = {}
        self.count = 0
        self.problems: list[str] = []
        self.notes: list[str] = []  # warnings whatever the on_file_error policy
        self.areas: tuple[str, ...] = ()  # where links may lead (set per archive type)
        self.database_files: list[str] = []
        # Rows not yet written and hashed, all of one section (its hash must see only its own).
        self._lines: list[str] = []
        self._section = ""

    def set_excludes(self, excludes: tuple[str, ...]) -> None:
        """Exclude these globs from now on (__pycache__ always)."""
        self.excluded = exclusion(ALWAYS_EXCLUDED + excludes)

    def flush(self) -> None:
        """Write and hash the pending rows; the hashes see exactly the bytes written."""
        if not self._lines:
            return
        text = "".join(self._lines)
        self._lines.clear()
        self.out.write(text)
        data = text.encode()
        self.hash.update(data)
        # Per section (night folder) too: per-night archives repack only what changed.
        section_hash = self.section_hashes.get(self._section)
        if section_hash is None:
            section_hash = self.section_hashes[self._section] = hashlib.sha256()
        section_hash.update(data)

    def _begin(self, section: str) -> None:
        """Rows of `section` follow: flush another section's pending rows first."""
        if section != self._section:
            self.flush()
            self._section = section

    def _emit(self, entry: Entry) -> None:
        """Record one entry (first section to claim a path wins)."""
        if self.dedupe:
            if entry.arcname in self.seen:
                return
            self.seen.add(entry.arcname)
        self._begin(entry.section)
        self._lines.append(entry.to_line())
        self.count += 1
        st = self.stats.get(entry.section)
        if st is None:
            st = self.stats[entry.section] = Stats(entry.section)
        if entry.kind == "file":
            st.files += 1
            st.raw_bytes += entry.size
            if entry.arcname.endswith(DB_SUFFIXES):
                self.database_files.append(entry.arcname)
        elif entry.kind == "dir":
            st.dirs += 1
        else:
            st.links += 1
        if len(self._lines) >= _BLOCK_LINES:
            self.flush()

    def _problem(self, message: str) -> None:
        """Collect a problem; scans report them all at once."""
        self.problems.append(message)

    def _entry(self, arcname: str, path: str, st: os.stat_result, section: str) -> Entry | None:
        """Build an entry from an lstat result (None for sockets, FIFOs, devices)."""
        mode = st.st_mode
        if unsafe_name(arcname):
            self.notes.append(f"{shown(path)}: a newline, control character or non-UTF-8 "
                              "byte in the name; not archived (restore would refuse it)")
            return None
        if stat.S_ISLNK(mode):
            kind, size, link = "symlink", 0, os.readlink(path)
            if unsafe_name(link) or loops(path):
                self.notes.append(f"{shown(path)}: symlink to {shown(link)!r} loops or has "
                                  "a control character; not archived (restore would refuse it)")
                return None
            if link_escapes(arcname, link, self.areas):
                # Restore and import refuse archives with such links (SPEC 8): keeping it
                # would make the whole backup unrestorable.
                self.notes.append(f"{path}: symlink to {link!r} leads outside the backed-up "
                                  "areas; not archived (restore would refuse it)")
                return None
        elif stat.S_ISDIR(mode):
            kind, size, link = "dir", 0, ""
        elif stat.S_ISREG(mode):
            kind, size, link = "file", st.st_size, ""
        else:
            self._problem(f"{path}: not a regular file, folder or symlink; skipped")
            return None
        return Entry(arcname, path, kind, size, stat.S_IMODE(mode), st.st_uid, st.st_gid,
                     st.st_mtime_ns, link, section)

    def walk(self, arcname: str, path: str, section: str, follow_root: bool = False) -> None:
        """Add a file, symlink or whole folder tree under its archive name."""
        if arcname in self.seen or self.excluded(arcname, arcname.rsplit("/", 1)[-1]):
            return
        try:
            st = os.stat(path) if follow_root else os.lstat(path)
        except FileNotFoundError:
            return  # Allsky drops targets that do not exist; so do we
        except OSError as e:
            self._problem(os_message(e, path, "looking at it"))
            return
        entry = self._entry(arcname, path, st, section)
        if entry is None:
            return
        self._emit(entry)
        if entry.kind == "dir":
            self._walk_dir(arcname, path, section)

    def _walk_dir(self, arcname: str, path: str, section: str) -> None:
        """Recurse into a folder, sorted by name for a stable archive order."""
        try:
            # Listed through a descriptor, so each member's lstat is an fstatat by name
            # instead of a lookup of its whole path.
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            self._problem(os_message(e, path, "listing the folder"))
            return
        try:
            try:
                with os.scandir(fd) as it:
                    children = sorted(it, key=by_name)
            except OSError as e:
                self._problem(os_message(e, path, "listing the folder"))
                return
            self._members(arcname, path, section, children)
        finally:
            os.close(fd)

    def _members(self, arcname: str, path: str, section: str,
                 children: list[os.DirEntry[str]]) -> None:
        """Add a folder's members; their DirEntry.stat needs the folder's descriptor open.

        Regular files, nearly every member, take an inlined path: their row is formatted here
        exactly as Entry.to_line does, without an Entry per file (the no-op re-run's cost).
        """
        esc, seen, dedupe, excluded = json_str, self.seen, self.dedupe, self.excluded
        lines, databases = self._lines, self.database_files
        stats = self.stats.get(section)
        if stats is None:
            stats = self.stats[section] = Stats(section)
        base = path if path.endswith("/") else path + "/"  # as os.path.join(path, name)
        # JSON escapes each character on its own, so a row's two paths are their folders'
        # escaped prefixes plus the escaped name, escaped once.
        arc_prefix, source_prefix = esc(arcname + "/")[:-1], esc(base)[:-1]
        tail = f',"",{esc(section)}]\n'  # linkname and section of a regular file's row
        self._begin(section)
        files = raw_bytes = 0
        for child in children:
            name = child.name
            child_arc = f"{arcname}/{name}"
            if (dedupe and child_arc in seen) or excluded(child_arc, name):
                continue
            source = base + name
            if name.endswith(JOURNAL_SUFFIXES) and is_journal(source, name):
                continue
            try:
                st = child.stat(follow_symlinks=False)
            except OSError as e:
                self._problem(os_message(e, source, "looking at it"))
                continue
            mode = st.st_mode
            if not stat.S_ISREG(mode) or unsafe_name(name):
                entry = self._entry(child_arc, source, st, section)
                if entry is not None:
                    self._emit(entry)
                    if entry.kind == "dir":
                        self._walk_dir(child_arc, source, section)
                continue
            if dedupe:
                seen.add(child_arc)
            size = st.st_size
            name_end = esc(name)[1:]
            lines.append(f"[{arc_prefix}{name_end},{source_prefix}{name_end},\"file\",{size},"
                         f"{stat.S_IMODE(mode)},{st.st_uid},{st.st_gid},{st.st_mtime_ns}{tail}")
            files += 1
            raw_bytes += size
            if child_arc.endswith(DB_SUFFIXES):
                databases.append(child_arc)
            if len(lines) >= _BLOCK_LINES:
                self.flush()
        self.count += files
        stats.files += files
        stats.raw_bytes += raw_bytes

    def walk_all_images(self, images: Path, keep: set[str] | None = None) -> None:
        """The whole images folder (followed if a symlink), with stats per night folder.

        keep: the folders select_folders kept; other folders (symlinks leading outside) are skipped.
        """
        try:
            st = os.stat(images)
        except OSError as e:
            raise ScanError(f"images folder {os_message(e, images)}") from e
        root = self._entry("images", str(images), st, "images")
        if root is None or root.kind != "dir":
            raise ScanError(f"images folder {images} is not a folder")
        self._emit(root)
        with os.scandir(images) as it:
            children = sorted(it, key=by_name)
        for child in children:
            if keep is not None and child.name not in keep and child.is_symlink():
                continue  # a folder link select_folders left out (and noted)
            section = child.name if child.is_dir(follow_symlinks=False) else "images"
            self.walk(f"images/{child.name}", child.path, section)
