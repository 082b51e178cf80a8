"""Pack: stream the scanned files into one archive, hashing as it goes, renamed when whole."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tarfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..archive.compression import frame_wanted
from ..archive.io import ARCHIVE_MODE, CHUNK, TarStream, compressed_writer, fsync_dir
from ..archive.limits import Limits, Stop
from ..archive.member_names import in_area
from ..archive.metadata import LINK_TARGET, MetadataBuilder, full_mode
from ..archive.safety import check_areas, claimed_areas
from ..archive.tar_scan import Scan
from ..archive.writer import drop_cached
from ..errors import PackError, os_message
from ..spec.load import Spec
from .digests import DigestPipeline, member_digests
from .names import archive_name, clean_stale_parts
from .scan import Entry, ScanSummary
from .sources import RETRIES, SMALL, SOURCE_FLAGS, SQLITE_MAGIC, Changed, group_name, link_target, read_whole, user_name

__all__ = ["PackResult", "Packer", "archive_name", "clean_stale_parts", "pack"]


@dataclass
class PackResult:
    """What pack produced."""

    archive: str
    size: int
    sha256: str
    metadata: str
    metadata_sha256: str
    created: str
    members: int
    raw_bytes: int
    seconds: float
    warnings: list[str] = field(default_factory=list)


class Packer:
    """Writes entries into a tar stream and records them in the metadata."""

    def __init__(self, spec: Spec, tar: TarStream, meta: MetadataBuilder,
                 digests: DigestPipeline, workdir: Path, summary_targets: list[str],
                 on_bytes: Callable[[int, str], None] | None = None,
                 on_warning: Callable[[str], None] | None = None) -> None:
        self.spec = spec
        self.tar = tar
        self.meta = meta
        self.digests = digests  # every row goes through it, so rows keep the archive's order
        self.workdir = workdir
        self.buffer = bytearray(CHUNK)
        self.on_bytes = on_bytes or (lambda n, name: None)
        self.on_warning = on_warning or (lambda message: None)
        # Restore's own member rules, applied before each header: nothing it would refuse is written.
        self.rules = Scan(Limits())
        self.areas = claimed_areas(spec.type, summary_targets)
        self._area_parent = ""  # a folder inside the areas: its members are too

    def _problem(self, message: str) -> None:
        """Fail or warn, as the spec says."""
        if self.spec.on_file_error == "fail":
            raise PackError(message, hint="fix the file, or set on_file_error: warn in the spec")
        self.meta.warnings.append(message)
        self.on_warning(message)

    def _header(self, entry: Entry, kind: bytes, size: int, mode: int, uid: int, gid: int,
                mtime: int, linkname: str = "", mtime_ns: int | None = None) -> None:
        """Write the member's tar header (its exact time too, when it has a sub-second part)."""
        self.tar.member(entry.arcname, kind, size, mode, uid, gid, mtime, linkname,
                        user_name(uid), group_name(gid), mtime_ns)

    def _row(self, entry: Entry, kind: str, size: int, mode: int, uid: int, gid: int,
             mtime: int, **extra: Any) -> dict[str, Any]:
        """Our manifest row for a member."""
        return {"path": entry.arcname, "type": kind, "size": size, "mode": full_mode(mode),
                "uid": uid, "gid": gid, "owner": user_name(uid), "group": group_name(gid),
                "mtime": mtime, **extra}

    def _refused(self, entry: Entry) -> bool:
        """True (after a warning, or PackError) if restore would refuse this member."""
        try:
            parent = entry.arcname.rpartition("/")[0]
            if parent != self._area_parent or not parent:
                if not (in_area(entry.arcname, self.areas) or entry.arcname == "images"):
                    raise Stop(f"outside the archive's areas ({', '.join(self.areas)})", entry.arcname)
                if parent and in_area(parent, self.areas):
                    self._area_parent = parent
            self.rules.check(entry.arcname, entry.kind, entry.linkname)
        except Stop as e:
            self._problem(f"{entry.source}: not archived, restore would refuse it: {e.problem}")
            return True
        return False

    def finish(self) -> None:
        """Links that lead outside through other links: the archive is not kept."""
        try:
            check_areas(self.rules, self.areas)
        except Stop as e:
            raise PackError(f"{e.member}: {e.problem}; restore would refuse the archive, so it was "
                            "not kept", hint="remove or fix that link, or exclude it in the spec") from None

    def add(self, entry: Entry) -> None:
        """Add one scanned entry."""
        if self._refused(entry):
            return
        if entry.kind == "dir":
            mtime = entry.mtime_ns // 1_000_000_000
            self._header(entry, tarfile.DIRTYPE, 0, entry.mode, entry.uid, entry.gid, mtime,
                         mtime_ns=entry.mtime_ns)
            self.digests.add(self._row(entry, "dir", 0, entry.mode, entry.uid, entry.gid, mtime))
        elif entry.kind == "symlink":
            mtime = entry.mtime_ns // 1_000_000_000
            self._header(entry, tarfile.SYMTYPE, 0, entry.mode, entry.uid, entry.gid, mtime,
                         entry.linkname, entry.mtime_ns)
            row = self._row(entry, "symlink", 0, entry.mode, entry.uid, entry.gid, mtime,
                            linkname=entry.linkname)
            row[LINK_TARGET] = link_target(entry.source)
            self.digests.add(row)
        else:
            self._add_file(entry)

    def _open(self, entry: Entry) -> int | None:
        """Open a source file without following a link or blocking; refuse a non-regular file.

        A FIFO (or device) swapped in since the scan would block a plain open() forever, with
        the service stopped: O_NONBLOCK opens it at once, and fstat then refuses it.
        """
        try:
            fd = os.open(entry.source, SOURCE_FLAGS)
        except FileNotFoundError:
            self._problem(f"{entry.source}: vanished before it could be packed")
            return None
        except OSError as e:
            self._problem(f"{os_message(e, entry.source, 'opening it to pack')}; not archived")
            return None
        kind = os.fstat(fd).st_mode
        if not stat.S_ISREG(kind):
            os.close(fd)
            self._problem(f"{entry.source}: is no longer a regular file "
                          f"({stat.filemode(kind)}) since the scan; not archived")
            return None
        os.set_blocking(fd, True)
        return fd

    def _add_file(self, entry: Entry) -> None:
        """Add a regular file: whole-read with retries if small, streamed if large."""
        for _attempt in range(RETRIES):
            fd = self._open(entry)
            if fd is None:
                return
            try:
                st = os.fstat(fd)
                if st.st_size > SMALL:
                    return self._stream(entry, fd, st)
                data = read_whole(fd, st)
                if data[:16] == SQLITE_MAGIC:
                    return self._add_sqlite(entry)
                return self._emit(entry, st, data)
            except Changed:
                continue
            except OSError as e:
                return self._problem(f"{os_message(e, entry.source, 'reading it')}; not archived")
            finally:
                os.close(fd)
        self._problem(f"{entry.source}: kept changing while being read ({RETRIES} tries); "
                      "not archived")

    def _emit(self, entry: Entry, st: os.stat_result, data: bytes, **extra: Any) -> None:
        """Write a file member from memory."""
        mode, mtime = st.st_mode & 0o7777, st.st_mtime_ns // 1_000_000_000
        self.tar.select(frame_wanted(entry.arcname, len(data)))
        self._header(entry, tarfile.REGTYPE, len(data), mode, st.st_uid, st.st_gid, mtime,
                     mtime_ns=st.st_mtime_ns)
        self.tar.data(data)
        self.tar.pad(len(data))
        row = self._row(entry, "file", len(data), mode, st.st_uid, st.st_gid, mtime,
                        sha256="", **extra)  # filled in from data by the pipeline
        self.digests.add(row, data)
        self.on_bytes(len(data), entry.arcname)

    def _stream(self, entry: Entry, fd: int, st: os.stat_result) -> None:
        """Stream a large file in 1 MiB chunks; a change is detected after the fact."""
        with os.fdopen(os.dup(fd), "rb", buffering=0) as fh:
            head = os.pread(fd, 16, 0)
            if head == SQLITE_MAGIC:
                return self._add_sqlite(entry)
            size, mode, mtime = st.st_size, st.st_mode & 0o7777, st.st_mtime_ns // 1_000_000_000
            self.tar.select(frame_wanted(entry.arcname, size))
            self._header(entry, tarfile.REGTYPE, size, mode, st.st_uid, st.st_gid, mtime,
                         mtime_ns=st.st_mtime_ns)
            digest, left, view = hashlib.sha256(), size, memoryview(self.buffer)
            while left > 0:
                n = fh.readinto(view[: min(CHUNK, left)])
                if not n:
                    break
                digest.update(view[:n])
                self.tar.data(view[:n])
                left -= n
                self.on_bytes(n, entry.arcname)
            changed = left > 0 or fh.read(1) != b""
            if left > 0:  # the header promised `size` bytes: keep the stream well-formed
                self.tar.data(b"\0" * left)
                digest.update(b"\0" * left)
            self.tar.pad(size)
            after = os.fstat(fd)
            changed = changed or after.st_mtime_ns != st.st_mtime_ns or after.st_size != size
            extra: dict[str, Any] = {"sha256": digest.hexdigest()}
            if changed:
                extra["changedWhilePacking"] = True
                self._problem(f"{entry.source}: changed while being packed "
                              f"({size} bytes expected); the archived copy is incomplete")
            self.digests.add(self._row(entry, "file", size, mode, st.st_uid, st.st_gid, mtime,
                                       **extra))

    def _add_sqlite(self, entry: Entry) -> None:
        """Pack a consistent copy of a live SQLite database under its own name."""
        from .sqlite_capture import capture_sqlite  # only when a database is selected

        capture = capture_sqlite(Path(entry.source), self.workdir)
        try:
            src = os.stat(entry.source)
            self.meta.databases.append({
                "path": entry.arcname, "method": capture.method,
                "journalMode": capture.journal_mode, "pages": capture.pages,
                "integrity": capture.integrity,
            })
            fd = os.open(capture.copy, os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                mode, mtime = src.st_mode & 0o7777, src.st_mtime_ns // 1_000_000_000
                self.tar.select(frame_wanted(entry.arcname, size))
                self._header(entry, tarfile.REGTYPE, size, mode, src.st_uid, src.st_gid, mtime,
                             mtime_ns=src.st_mtime_ns)
                digest = self.copy_fd(fd, size)
                self.on_bytes(size, entry.arcname)
                self.digests.add(self._row(entry, "file", size, mode, src.st_uid, src.st_gid,
                                           mtime, sha256=digest, captured=capture.method))
            finally:
                os.close(fd)
        finally:
            capture.copy.unlink(missing_ok=True)

    def copy_fd(self, fd: int, size: int) -> str:
        """Copy `size` bytes of a private, stable file into the tar; return its SHA-256."""
        digest, view, offset = hashlib.sha256(), memoryview(self.buffer), 0
        while offset < size:
            n = os.preadv(fd, [view[: min(CHUNK, size - offset)]], offset)
            if not n:
                raise PackError(f"private copy shrank while packing (fd {fd})")
            digest.update(view[:n])
            self.tar.data(view[:n])
            offset += n
        self.tar.pad(size)
        return digest.hexdigest()


def pack(spec: Spec, summary: ScanSummary, rows: Iterable[Entry], workdir: Path,
         extra: dict[str, Any] | None = None,
         on_bytes: Callable[[int, str], None] | None = None,
         on_warning: Callable[[str], None] | None = None) -> PackResult:
    """Write the archive to a temp name in the destination and rename it when complete."""
    started = time.monotonic()
    now = datetime.now().astimezone()
    dest = spec.destination
    per_night = (extra or {}).get("perNight")
    night = per_night.get("folder") if isinstance(per_night, dict) else None
    final = archive_name(dest, spec.type, spec.suffix, now, night)
    tmp = dest / f".{final.name}.part"
    meta = MetadataBuilder(spec, summary, workdir)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, ARCHIVE_MODE)
    except OSError as e:
        raise PackError(f"cannot create the archive: {os_message(e, tmp)}") from e
    try:
        os.fchmod(fd, ARCHIVE_MODE)
        with os.fdopen(fd, "wb", buffering=CHUNK) as raw:
            with compressed_writer(spec.format, spec.level, raw, int(now.timestamp()),
                                   spec.media_compression == "fast") as (stream, hashed):
                tar = TarStream(stream)
                with member_digests(meta.add) as digests:
                    packer = Packer(spec, tar, meta, digests, workdir, summary.targets, on_bytes,
                                    on_warning)
                    for entry in rows:
                        packer.add(entry)
                    packer.finish()
                meta_path = meta.write(final.name, now, extra or {})
                meta_sha256 = _add_metadata(packer, meta_path, now)
                tar.close()
            raw.flush()
            os.fsync(raw.fileno())
            drop_cached(raw.fileno())  # verify must read what the disk holds
        os.replace(tmp, final)
        fsync_dir(dest)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        meta.close()
        hint = "free some space at the destination" if e.errno == errno.ENOSPC else None
        raise PackError(os_message(e, e.filename or tmp, f"writing {final.name}"), hint=hint) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        meta.close()
        raise
    return PackResult(
        archive=str(final), size=hashed.size, sha256=hashed.sha256.hexdigest(),
        metadata=str(meta_path), metadata_sha256=meta_sha256, created=now.isoformat(timespec="seconds"),
        members=meta.totals["members"], raw_bytes=meta.totals["rawBytes"],
        seconds=round(time.monotonic() - started, 3),
        warnings=summary.warnings + meta.warnings,
    )


def _add_metadata(packer: Packer, path: Path, now: datetime) -> str:
    """metadata.json as the last member, where Allsky puts it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size, uid, gid = os.fstat(fd).st_size, os.getuid(), os.getgid()
        packer.tar.select(False)  # JSON: compresses well
        packer.tar.member("metadata.json", tarfile.REGTYPE, size, 0o644, uid, gid,
                          int(now.timestamp()), "", user_name(uid), group_name(gid))
        return packer.copy_fd(fd, size)
    finally:
        os.close(fd)
