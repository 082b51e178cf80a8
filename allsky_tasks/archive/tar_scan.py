"""The per-member rules of an untrusted tar stream, applied as each header arrives."""

from __future__ import annotations

import hashlib
import posixpath
import tarfile

from .io import BLOCK, CHUNK
from .limits import Limiter, Limits, Stop
from .member_names import CONTROL, ancestors, hard_link_problem, path_problem
from .members import Member, member_of

__all__ = ["Scan", "read_tar"]

_ALLOWED = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
            tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink"}
_REFUSED = {tarfile.CHRTYPE: "a character device",
            tarfile.BLKTYPE: "a block device", tarfile.FIFOTYPE: "a FIFO",
            tarfile.CONTTYPE: "a contiguous file", tarfile.GNUTYPE_SPARSE: "a sparse file"}
_TARBUF = 1 << 16  # tarfile copies its whole buffer per header: 1 MiB made 100k headers 2x slower


class Scan:
    """Per-member rules, applied as each header arrives."""

    def __init__(self, limits: Limits, hash_members: bool = True) -> None:
        self.limits, self.file_bytes = limits, 0
        self.hash_members = hash_members  # False: data skipped (still decompressed, checksummed)
        self.types: dict[str, str] = {}
        self.parents: set[str] = set()
        self.links: dict[str, str] = {}
        self.entries: list[Member] = []
        self.metadata_raw: bytes | None = None
        self.current: str | None = None
        self._checked_parent = ""  # the folder of the last member `check` passed in full

    def add(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        """Check one member; hash its data (metadata.json's bytes are kept)."""
        name = self.current = info.name
        problem = path_problem(name)
        if problem:
            raise Stop(problem, name)
        if info.offset_data - info.offset > self.limits.max_header_bytes:
            raise Stop(f"a member header larger than {self.limits.max_header_bytes} bytes", name)
        if len(self.types) >= self.limits.max_members:
            raise Stop(f"more than {self.limits.max_members} members (limit)", name)
        if info.type not in _ALLOWED:
            what = _REFUSED.get(info.type, f"an unsupported member type {info.type!r}")
            raise Stop(f"{what} is not allowed", name)
        key, kind = name.rstrip("/"), _ALLOWED[info.type]
        if kind == "hardlink":  # checked before it is placed: a link to itself is refused too
            problem = hard_link_problem(info.linkname, self.types) or (
                f"a hard link with {info.size} bytes of data" if info.size else None)
            if problem:
                raise Stop(problem, name)
        self._place(key, kind)
        if kind != "dir" and info.mode & 0o4000 or kind in ("file", "hardlink") and info.mode & 0o2000:
            raise Stop(f"set-user/group-ID mode {info.mode & 0o7777:04o}", name)
        if kind == "symlink":
            self._link(key, info.linkname)
        digest = self._data(tar, info, key) if kind == "file" and (
            self.hash_members or key == "metadata.json") else None
        if key != "metadata.json":
            self.entries.append(member_of(info, digest))
            self.file_bytes += info.size * (kind == "file")

    def check(self, name: str, kind: str, linkname: str = "") -> None:
        """The name, placement and link rules alone (pack applies them before each header).

        A file in the folder of the last member checked in full needs only its own name
        checked: its folders passed already (pack adds a folder's files one after another).
        """
        key = name.rstrip("/")
        parent, _, leaf = key.rpartition("/")
        if (kind == "file" and parent and parent == self._checked_parent and leaf not in (".", "..")
                and leaf and not CONTROL.search(leaf) and len(leaf.encode()) <= 255
                and len(key.encode()) <= 4096 and key not in self.types and key not in self.parents):
            self.types[key] = kind
            return
        problem = path_problem(name)
        if problem:
            raise Stop(problem, name)
        self._place(key, kind)
        if kind == "symlink":
            self._link(key, linkname)
        self._checked_parent = parent

    def _place(self, key: str, kind: str) -> None:
        """No duplicates, nothing below a file or link, no file or link above a member."""
        if key in self.types:
            raise Stop("duplicate member name", key)
        for parent in ancestors(key):
            if self.types.get(parent, "dir") != "dir":
                raise Stop(f"below {parent!r}, which is a {self.types[parent]}", key)
        if kind != "dir" and key in self.parents:
            raise Stop(f"a {kind} where earlier members have a folder", key)
        self.types[key] = kind
        self.parents.update(ancestors(key))

    def _link(self, key: str, target: str) -> None:
        """A symlink must be relative and stay inside the archive root."""
        if not target or CONTROL.search(target):
            raise Stop("symlink with an empty target or a control character", key)
        if target.startswith("/"):
            raise Stop(f"symlink to the absolute path {target!r}", key)
        if posixpath.normpath(posixpath.join(posixpath.dirname(key), target)).startswith(".."):
            raise Stop(f"symlink to {target!r} points outside the archive", key)
        self.links[key] = target

    def _data(self, tar: tarfile.TarFile, info: tarfile.TarInfo, key: str) -> str:
        """SHA-256 of a file member's data; metadata.json's bytes are kept (size-capped)."""
        keep = key == "metadata.json"
        if keep and info.size > self.limits.max_metadata_bytes:
            raise Stop(f"metadata.json is {info.size} bytes (limit "
                        f"{self.limits.max_metadata_bytes})", key)
        fh = tar.extractfile(info)
        assert fh is not None
        digest, parts = hashlib.sha256(), []
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            parts += [chunk] if keep else []
        self.metadata_raw = b"".join(parts) if keep else self.metadata_raw
        return digest.hexdigest()


def read_tar(limiter: Limiter, scan: Scan) -> None:
    """Iterate the members; after the tar end marker only NULs may follow."""
    headroom = limiter.limits.max_header_bytes + 2 * CHUNK
    limiter.window = headroom  # headers may be read only this far ahead (open reads one)
    # Stream mode only reads; the stub's file protocol asks for seek and write too.
    with tarfile.open(fileobj=limiter, mode="r|", bufsize=_TARBUF) as tar:  # type: ignore[call-overload]
        while (info := tar.next()) is not None:
            limiter.window = None  # member data is capped by the total and ratio limits
            scan.add(tar, info)
            tar.members.clear()  # stream mode never looks back: don't hold 200k headers
            # Data not read by add (members not hashed) is skipped by the next header read.
            data_end = info.offset_data + (-(-info.size // BLOCK) * BLOCK if info.isreg() else 0)
            limiter.window = max(limiter.pos, data_end) + headroom
        end = tar.offset
    scan.current = "(after the last member)"
    # tarfile also ends quietly at a damaged header: the block it stopped at must be NULs.
    if not limiter.tail_is_zero(end):
        raise Stop("data after the end of the tar archive (or a damaged header)")
    while chunk := limiter.read(CHUNK):
        if chunk.count(0) != len(chunk):
            raise Stop("data after the end of the tar archive")
    if limiter.pos - end < 2 * BLOCK:
        raise Stop("the tar end marker is missing (archive cut short?)")
