"""Tar member headers, byte-identical to tarfile's PAX format: plain ones built directly."""

from __future__ import annotations

import tarfile

# tarfile's TarInfo.tobuf costs ~20 us a member (dict, per-field itn/stn, struct checksums);
# most members need just one ASCII ustar block, which one str.format builds in ~4 us.
_KINDS = {tarfile.REGTYPE: "0", tarfile.DIRTYPE: "5", tarfile.SYMTYPE: "2"}
# name, mode, uid, gid, size, mtime, checksum (spaces while summing), type, linkname, magic,
# uname, gname: tarfile's _create_header layout; devmajor/minor, prefix and padding are zeros.
_HEAD = ("{0:\0<100}{1:07o}\0{2:07o}\0{3:07o}\0{4:011o}\0{5:011o}\0        {6}{7:\0<100}"
         "ustar\x0000{8:\0<32}{9:\0<32}").format
_TAIL = bytes(tarfile.BLOCKSIZE - 329)  # _HEAD fills the first 329 bytes
_MAX_ID, _MAX_BIG = 8 ** 7, 8 ** 11  # 8- and 12-byte octal fields hold numbers below these


def ustar_header(name: str, kind: bytes, size: int, mode: int, uid: int, gid: int, mtime: int,
                 linkname: str = "", uname: str = "", gname: str = "",
                 mtime_ns: int | None = None) -> bytes:
    """The header tarfile writes for the member in PAX format (a PAX record first if needed).

    `mtime_ns` with a sub-second part adds a PAX `mtime` record holding it exactly (as GNU
    tar's posix format does), so a restore sets the very time; the ustar field keeps the
    whole seconds (`mtime`).
    """
    exact = pax_mtime(mtime_ns) if mtime_ns is not None and mtime_ns % 10 ** 9 else None
    if exact is None:
        return (plain_header(name, kind, size, mode, uid, gid, mtime, linkname, uname, gname)
                or _tarfile_header(name, kind, size, mode, uid, gid, mtime, linkname, uname,
                                   gname))
    plain = plain_header(name, kind, size, mode, uid, gid, mtime, linkname, uname, gname)
    if plain is not None:
        return _pax_block(exact) + plain
    return _tarfile_header(name, kind, size, mode, uid, gid, mtime, linkname, uname, gname,
                           {"mtime": exact})


def pax_mtime(mtime_ns: int) -> str:
    """A PAX mtime value, exact to the nanosecond: seconds, a dot, the fraction (no trailing 0)."""
    seconds, fraction = divmod(mtime_ns, 10 ** 9)
    return f"{seconds}.{fraction:09d}".rstrip("0").rstrip(".")


def mtime_ns_of(pax_value: str | None) -> int | None:
    """The nanoseconds a PAX mtime value states exactly (None: none, or not a plain number)."""
    if not pax_value:
        return None
    whole, _, fraction = pax_value.partition(".")
    if not whole.lstrip("-").isdigit() or (fraction and not fraction.isdigit()):
        return None
    ns = int(whole) * 10 ** 9
    part = int((fraction + "000000000")[:9]) if fraction else 0
    return ns - part if whole.startswith("-") else ns + part


def _pax_block(mtime: str) -> bytes:
    """The PAX extended header with one mtime record, as tarfile writes it."""
    body = f" mtime={mtime}\n"
    n = p = 0
    while True:  # the record's length counts its own digits (tarfile's loop)
        n = len(body) + len(str(p))
        if n == p:
            break
        p = n
    record = f"{p}{body}".encode("ascii")
    head = _HEAD("././@PaxHeader", 0, 0, 0, len(record), 0, "x", "", "", "").encode("ascii")
    block = b"%s%06o\0 %s%s" % (head[:148], sum(head), head[156:], _TAIL)
    return block + record + bytes(-len(record) % tarfile.BLOCKSIZE)


def plain_header(name: str, kind: bytes, size: int, mode: int, uid: int, gid: int, mtime: int,
                 linkname: str = "", uname: str = "", gname: str = "") -> bytes | None:
    """tarfile's header as one ustar block, or None where it needs PAX records (or is odd)."""
    if kind == tarfile.DIRTYPE and not name.endswith("/"):
        name += "/"  # as TarInfo.get_info does
    code = _KINDS.get(kind)
    # create_pax_header adds PAX records for strings too long or not ASCII, and for numbers
    # out of octal range or floats; devices and other types are left to tarfile too.
    if (code is None or len(name) > 100 or len(linkname) > 100 or len(uname) > 32
            or len(gname) > 32 or not (name + linkname + uname + gname).isascii()
            or type(size) is not int or type(mode) is not int or type(uid) is not int
            or type(gid) is not int or type(mtime) is not int or not 0 <= uid < _MAX_ID
            or not 0 <= gid < _MAX_ID or not 0 <= size < _MAX_BIG
            or not 0 <= mtime < _MAX_BIG):
        return None
    head = _HEAD(name, mode & 0o7777, uid, gid, size, mtime, code, linkname, uname,
                 gname).encode("ascii")
    # The checksum sums the block with its own field as spaces (the zero tail adds nothing),
    # written as six octal digits, NUL and the last space, as tarfile writes it.
    return b"%s%06o\0 %s%s" % (head[:148], sum(head), head[156:], _TAIL)


def _tarfile_header(name: str, kind: bytes, size: int, mode: int, uid: int, gid: int,
                    mtime: int, linkname: str, uname: str, gname: str,
                    pax: dict[str, str] | None = None) -> bytes:
    """The header (PAX records included) as tarfile builds it."""
    info = tarfile.TarInfo(name)
    info.pax_headers = dict(pax or {})
    info.type, info.size, info.mode = kind, size, mode
    info.uid, info.gid, info.mtime = uid, gid, mtime
    info.linkname, info.uname, info.gname = linkname, uname, gname
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
