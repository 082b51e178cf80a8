"""metadata.json rows: the direct formatting is json.dumps's, byte for byte."""

from __future__ import annotations

import json
import os
import random
import tarfile

from allsky_tasks.archive.io import open_decompressed
from allsky_tasks.archive.metadata import flat_json

from ..conftest import Site, archive_metadata, backup

ODD_TEXT = ('quote"', "back\\slash", "tab\t", "new\nline", "nul\0", "\x7f", "naïve", "日本",
            "😀", os.fsdecode(b"bad\xffbyte"), "\u2028", "")
SEPARATORS = ((", ", ": "), (",", ":"))


def _value(rng: random.Random) -> object:
    """A row value: str or int mostly, sometimes something only json's own rules cover."""
    roll = rng.random()
    if roll < 0.45:
        return "".join(rng.choice(ODD_TEXT) if rng.random() < 0.2 else rng.choice("ab/._-0")
                       for _ in range(rng.randrange(12)))
    if roll < 0.9:
        return rng.choice((0, 1, -1, 0o644, 1000, 2 ** 31, 2 ** 64, -(2 ** 70)))
    return rng.choice((True, False, None, 1.5, float("nan"), [1, "x"], {"k": "v"}))


def _row(rng: random.Random) -> dict:
    """A flat row like pack's, keys odd now and then (non-str keys too, which json converts)."""
    row: dict = {}
    for name in ("path", "type", "size", "mode", "uid", "gid", "owner", "group", "mtime"):
        row[name] = _value(rng)
    for _ in range(rng.randrange(3)):
        key = rng.choice(("sha256", "linkname", 'odd "key"', "ключ", 7, None))
        row[key] = _value(rng)
    return row


def test_flat_json_is_json_dumps_byte_for_byte() -> None:
    rng = random.Random(7)
    direct = 0
    for _ in range(20_000):
        row = _row(rng)
        for item_sep, key_sep in SEPARATORS:
            expected = json.dumps(row, separators=(item_sep, key_sep))
            assert flat_json(row, item_sep, key_sep) == expected, row
        direct += all(type(v) in (str, int) and type(k) is str for k, v in row.items())
    assert direct > 1000  # the direct path, not only json's, was compared
    assert flat_json({}) == "{}" and flat_json({"a": 1}) == json.dumps({"a": 1})


def test_packed_metadata_rows_are_json_dumps_of_themselves(site: Site) -> None:
    odd = site.home / "config" / "myFiles" / "odd"
    odd.mkdir(parents=True, exist_ok=True)
    for name in ('quote"back\\slash\ttab.json', "emoji-😀.json", "naïve.txt"):
        (odd / name).write_text(name)
    with open(os.path.join(os.fsencode(odd), b"bad\xffbyte.json"), "w") as fh:
        fh.write("1")
    os.symlink('quote"back\\slash\ttab.json', odd / "link")
    archive = backup(site, "meta", "type: config\nsections: {myfiles: true}\n")
    with archive.open("rb") as raw, tarfile.open(
            fileobj=open_decompressed(archive, raw), mode="r|") as tar:
        text = next(tar.extractfile(m).read().decode()  # type: ignore[union-attr]
                    for m in tar if m.name == "metadata.json")
    meta = json.loads(text)
    rows = meta["allskyTasks"]["manifest"]
    # A non-UTF-8 name is left out (restore would refuse it), with a warning naming it.
    assert not any("bad" in r["path"] for r in rows)
    assert any("bad\\udcffbyte.json" in w and "not archived" in w
               for w in meta["allskyTasks"]["warnings"])
    # Each streamed line is exactly what json.dumps makes of the row or entry it parses to.
    assert _block(text, '    "permissions": {', "    }") == [
        f"        {json.dumps(path)}: {json.dumps(entry)}"
        for path, entry in meta["permissions"].items()]
    assert _block(text, '    "files": [', "    ]") == [
        f"        {json.dumps(path)}" for path in meta["files"]]
    assert _block(text, '        "manifest": [', "        ]") == [
        " " * 12 + json.dumps(row, separators=(",", ":")) for row in rows]


def _block(text: str, opening: str, closing: str) -> list[str]:
    """The lines of one streamed list or object, without their trailing commas."""
    body = text.split(f"\n{opening}\n", 1)[1].split(f"\n{closing}", 1)[0]
    return body.split(",\n")


def test_a_links_permissions_entry_is_its_targets_as_allsky_writes_it(site: Site) -> None:
    # Allsky's PHP (fileperms/fileowner) follows links; its restore chmods through them.
    images = site.home / "config" / "overlay" / "images"
    (images / "plain.png").write_bytes(b"png")
    os.chmod(images / "plain.png", 0o640)
    os.symlink("plain.png", images / "to-file.png")
    thumbs = site.home / "config" / "overlay" / "imagethumbnails"
    os.chmod(thumbs, 0o750)
    os.symlink("../imagethumbnails", images / "to-dir")
    os.symlink("nowhere.png", images / "dangling.png")
    meta = archive_metadata(backup(site, "links", "type: config\nformat: allsky\n"))
    perms, rows = meta["permissions"], {r["path"]: r for r in meta["allskyTasks"]["manifest"]}
    assert perms["config/overlay/images/to-file.png"]["mode"] == "0640"
    assert perms["config/overlay/images/to-dir"]["mode"] == "0750"
    for name in ("to-file.png", "to-dir"):
        assert perms[f"config/overlay/images/{name}"]["type"] == "link"
    # No target, no entry (PHP's fileperms gives false); the link is still a member.
    path = "config/overlay/images/dangling.png"
    assert path not in perms and path in meta["files"] and rows[path]["type"] == "symlink"
    # Our own manifest keeps the link as a link (its own mode), never the target's.
    assert rows["config/overlay/images/to-file.png"]["mode"] == "0777"
    assert all(not k.startswith("_") for row in rows.values() for k in row)
