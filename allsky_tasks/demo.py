"""Generate a realistic demo Allsky install tree for the README demo, test fixtures and benchmarks."""

from __future__ import annotations

import argparse
import grp
import io
import json
import math
import os
import pwd
import random
import shutil
import sqlite3
import struct
import sys
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw

VERSION = "v2025.xx.xx"
OTHER_CAMERA = ("ZWO", "ASI120MC-S")  # a camera used before the current one: its files linger in config/
CONFIG_FILE, CONFIG_DIR = 0o664, 0o775  # what Allsky's installer sets under config/
IMAGE_FILE, IMAGE_DIR = 0o644, 0o755  # what capture/saveImage.sh leave with a 022 umask
SECRET_FILE = 0o600
# Tuned: a 640x480 frame is ~200 KB at quality 90 (4:4:4) and zstd -3 saves ~1%, like real sky JPEGs.
NOISE_LUT = [v * 36 // 256 for v in range(256)]
THUMB_WIDTH, VIDEO_PAYLOAD = 100, 200 * 1024


@dataclass(frozen=True)
class DemoTree:
    """What make_demo_tree created."""

    home: Path
    images: Path
    nights: list[str]
    camera_type: str
    camera_model: str


class _Writer:
    """Writes files under one root with explicit modes and distinct, increasing 'install-time' mtimes."""

    def __init__(self, root: Path, installed: datetime) -> None:
        """Remember the root and start the clock used for config-like files."""
        self.root, self.clock = root, installed.timestamp()

    def write(self, rel: str, data: bytes | str | dict, mode: int = CONFIG_FILE, mtime: float | None = None) -> Path:
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


def _encode(img: Image.Image, fmt: str = "JPEG", quality: int = 90) -> bytes:
    """Encode an image; JPEGs are 4:4:4 so the colour noise survives, as in sensor JPEGs."""
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": quality, "subsampling": 0} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _thumb(img: Image.Image) -> bytes:
    """A JPEG thumbnail THUMB_WIDTH px wide, as saveImage.sh and thumbnail.sh make."""
    size = (THUMB_WIDTH, max(1, round(THUMB_WIDTH * img.height / img.width)))
    return _encode(img.resize(size, Image.Resampling.BILINEAR), quality=80)


def _sky(size: tuple[int, int]) -> Image.Image:
    """Fisheye night sky: dark zenith, glow towards the horizon, black outside the lens circle."""
    d = min(size)
    glow = Image.radial_gradient("L").resize((d, d)).point(lambda v: 3 + v * 40 // 255)
    mask = Image.new("L", (d, d), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, d - 1, d - 1), fill=255)
    lum = Image.new("L", size, 0)
    lum.paste(glow, ((size[0] - d) // 2, (size[1] - d) // 2), mask)
    return Image.merge("RGB", (lum.point(lambda v: v * 3 // 4), lum.point(lambda v: v * 7 // 8), lum))


def _stars(size: tuple[int, int], rng: random.Random) -> list[tuple[float, float, int]]:
    """A few hundred stars as (radius, angle, brightness) around the image centre (the pole, simply)."""
    radius = min(size) / 2 - 2
    return [(radius * math.sqrt(rng.random()), rng.uniform(0, math.tau), rng.randrange(70, 256)) for _ in range(300)]


def _frame(sky: Image.Image, stars: list[tuple[float, float, int]], minute: int, rng: random.Random) -> Image.Image:
    """One exposure: the rotated star field plus per-pixel sensor noise (what makes JPEGs incompressible)."""
    img, (w, h) = sky.copy(), sky.size
    draw, turn = ImageDraw.Draw(img), minute * math.tau / 1436  # sidereal rotation, so startrails trail
    for r, a, b in stars:
        x, y = int(w / 2 + r * math.cos(a + turn)), int(h / 2 + r * math.sin(a + turn))
        if b > 235:
            draw.ellipse((x - 1, y - 1, x + 1, y + 1), fill=(b, b, b))
        else:
            draw.point((x, y), (b, b, b - 10))
    # Seeded random bytes, not Image.effect_noise: that uses C rand() and would break determinism.
    noise = [Image.frombytes("L", img.size, rng.randbytes(w * h)).point(NOISE_LUT) for _ in range(3)]
    return ImageChops.add(img, Image.merge("RGB", noise))


def _write_night(out: _Writer, night: str, start: datetime, frames: int, sky: Image.Image, seed: int) -> None:
    """One night folder: frames, thumbnails, keogram, startrails, timelapse and their thumbnails."""
    stars, (w, h) = _stars(sky.size, random.Random(f"{seed}:{night}:stars")), sky.size
    trails, columns, mid, last = None, [], None, start.timestamp()
    for i in range(frames):
        stamp = start + timedelta(seconds=60 * i)
        name, last = f"image-{stamp:%Y%m%d%H%M%S}.jpg", stamp.timestamp()
        img = _frame(sky, stars, i, random.Random(f"{seed}:{stamp:%Y%m%d%H%M%S}"))
        out.write(f"{night}/{name}", _encode(img), IMAGE_FILE, last)
        out.write(f"{night}/thumbnails/{name}", _thumb(img), IMAGE_FILE, last + 1)
        # Keogram = the centre column of every frame; startrails = the per-pixel maximum of all frames.
        columns.append(img.crop((w // 2, 0, w // 2 + 1, h)))
        trails = img if trails is None else ImageChops.lighter(trails, img)
        mid = img if i == frames // 2 else mid
    keogram = Image.new("RGB", (len(columns), h))
    for x, col in enumerate(columns):
        keogram.paste(col, (x, 0))
    done = last + 600  # generateForDay.sh runs after the night ends
    for kind, img in (("keogram", keogram.resize((w, h), Image.Resampling.NEAREST)), ("startrails", trails)):
        out.write(f"{night}/{kind}/{kind}-{night}.jpg", _encode(img), IMAGE_FILE, done)
        out.write(f"{night}/{kind}thumbnail/{kind}-{night}.jpg", _thumb(img), IMAGE_FILE, done + 5)
    # No ffmpeg here: an ISO-BMFF-looking stand-in, a valid ftyp box then an mdat box of random bytes.
    ftyp = b"isom" + struct.pack(">I", 0x200) + b"isomiso2avc1mp41"
    mdat = random.Random(f"{seed}:{night}:video").randbytes(VIDEO_PAYLOAD)
    mp4 = struct.pack(">I", 8 + len(ftyp)) + b"ftyp" + ftyp + struct.pack(">I", 8 + len(mdat)) + b"mdat" + mdat
    out.write(f"{night}/allsky-{night}.mp4", mp4, IMAGE_FILE, done + 60)
    out.write(f"{night}/videothumbnail/allsky-{night}.jpg", _thumb(mid), IMAGE_FILE, done + 65)


def _settings(cam_type: str, model: str, size: tuple[int, int]) -> dict:
    """A settings_<type>_<model>.json as the WebUI writes it (a realistic subset of its ~150 keys)."""
    return {
        "cameratype": cam_type, "cameramodel": model, "cameranumber": 0, "lastchanged": "2025-11-02 14:07:31",
        "locale": "en_US.UTF-8", "latitude": "52.21N", "longitude": "0.12E", "angle": -6, "filename": "image.jpg",
        "takedaytimeimages": True, "savedaytimeimages": False, "dayautoexposure": True, "daymaxautoexposure": 10000,
        "dayexposure": 0.5, "daymean": 0.5, "daymeanthreshold": 0.1, "dayautogain": False, "daygain": 1,
        "daymaxautogain": 16, "daybin": 1, "dayawb": True, "daywbr": 2.5, "daywbb": 2.0, "daydelay": 30000,
        "takenighttimeimages": True, "savenighttimeimages": True, "nightautoexposure": True,
        "nightmaxautoexposure": 20000, "nightexposure": 10000, "nightmean": 0.2, "nightmeanthreshold": 0.1,
        "nightautogain": True, "nightgain": 8, "nightmaxautogain": 16, "nightbin": 1, "nightawb": False,
        "nightwbr": 2.5, "nightwbb": 2.0, "nightdelay": 10, "consistentdelays": True, "quality": 90,
        "width": size[0], "height": size[1], "rotation": 0, "flip": "No flip", "usedarkframes": True,
        "temptype": "C", "timeformat": "%Y%m%d %H:%M:%S", "thumbnailsizex": THUMB_WIDTH, "keogramgenerate": True,
        "startrailsgenerate": True, "timelapsegenerate": True, "timelapsefps": 25, "uselogin": True,
        "databasetype": "sqlite", "databasedatabase": "allsky", "useremotewebsite": False, "uselocalwebsite": False,
    }


def _capabilities(cam_type: str, model: str, sensor: str) -> dict:
    """A cc_<type>_<model>.json: the camera capabilities the capture program reports (a few KB)."""
    controls = [("Gain", 1, 16, 1), ("Exposure", 1, 200000000, 10000), ("AutoExposure", 0, 1, 1),
                ("WB_R", 0, 32, 2.5), ("WB_B", 0, 32, 2.0), ("AWB", 0, 1, 1), ("Brightness", -1, 1, 0),
                ("Contrast", 0, 32, 1), ("Saturation", 0, 32, 1), ("Sharpness", 0, 16, 1), ("Offset", 0, 50, 0),
                ("Bin", 1, 2, 1), ("Temperature", -40, 80, 0)]
    return {"cameraType": cam_type, "cameraModel": model, "cameraNumber": 0, "sensor": sensor,
            "sensorWidth": 4056, "sensorHeight": 3040, "pixelSize": 1.55, "bitDepth": 12, "colorCamera": True,
            "supportsTemperature": cam_type == "ZWO", "hasCooler": False, "supportedBins": [1, 2],
            "supportedImageFormats": ["RAW8", "RGB24", "RAW16"],
            "controls": [{"Name": n, "argumentName": n.lower().replace("_", ""), "MinValue": lo, "MaxValue": hi,
                          "DefaultValue": d, "IsAutoSupported": n in ("Gain", "Exposure", "AWB"),
                          "IsWritable": True, "Description": f"{n} control ({sensor})"} for n, lo, hi, d in controls]}


def _step(module: str, name: str, kind: str = "system", **extra: object) -> dict:
    """One flow step as in config/modules/postprocessing_*.json."""
    return {"module": module, "metadata": {"name": name, "module": module.removesuffix(".py"),
            "events": {"0": "day", "1": "night"}, "arguments": {}, "experimental": False},
            "type": kind, "enabled": True, **extra}


def _owner() -> tuple[str, str]:
    """Current user and group names (numeric ids where a container has no names for them)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    except KeyError:
        return str(os.getuid()), str(os.getgid())


def _write_config(out: _Writer, cam: tuple[str, str], size: tuple[int, int], rng: random.Random) -> None:
    """version, variables.json, env.json, config/, scripts/modules/ and darks/."""
    token, home = f"{cam[0]}_{cam[1].replace(' ', '_')}", out.root  # functions.sh: only spaces become _
    user, group = _owner()
    out.write("version", f"{VERSION}\nDemo tree generated by allsky-tasks\n", 0o644)
    out.write("variables.json", {"ALLSKY_HOME": str(home), "ALLSKY_OWNER": user, "ALLSKY_GROUP": group}, 0o644)
    out.write("env.json", {"WARNING": "Do NOT edit this file manually.  Use the WebUI.", "WEBUI_USERNAME": "admin",
                           "WEBUI_PASSWORD": "$2y$10$" + rng.randbytes(40).hex()[:53],
                           "REMOTEWEBSITE_HOST": "www.example.org", "REMOTEWEBSITE_USER": "allsky",
                           "REMOTEWEBSITE_PASSWORD": "s3cret-" + rng.randbytes(6).hex(), "REMOTESERVER_HOST": "",
                           "REMOTESERVER_PASSWORD": "", "MYSQL_PASSWORD": rng.randbytes(8).hex()}, SECRET_FILE)
    # settings.json / cc.json are HARD links to the current camera's files, as Allsky makes them.
    for stem, body in (("settings", _settings(*cam, size)), ("cc", _capabilities(*cam, "imx477"))):
        os.link(out.write(f"config/{stem}_{token}.json", body), home / f"config/{stem}.json")
    other = "_".join(OTHER_CAMERA)
    out.write(f"config/settings_{other}.json", _settings(*OTHER_CAMERA, (1280, 960)))
    out.write(f"config/cc_{other}.json", _capabilities(*OTHER_CAMERA, "AR0130CS"))
    ov, mf = "config/overlay", "config/myFiles"
    out.write(f"{ov}/myTemplates/my-night-template.json", {"name": "My night", "fields": [{"label": "${TIME}"}]})
    logo = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(logo).ellipse((4, 4, 60, 60), outline=(255, 200, 0, 255), width=4)
    out.write(f"{ov}/images/observatory-logo.png", _encode(logo, "PNG"))
    out.write(f"{ov}/imagethumbnails/observatory-logo.png", _encode(logo.resize((32, 32)), "PNG"))
    out.write(f"{ov}/fonts/MyFont.ttf", b"\x00\x01\x00\x00" + rng.randbytes(4096))
    out.write(f"{ov}/config/overlay-{token}-{size[0]}x{size[1]}-both.json",
              {"settings": {"defaultfontsize": 40}, "fields": [{"label": "Exposure: ${sEXPOSURE}", "x": 20}]})
    out.write(f"{ov}/config/fields.json", {"data": [{"name": "${DATE}", "description": "Date"}]})
    out.write(f"{ov}/config/userfields.json", {"data": [{"name": "${MYFIELD}", "description": "Mine"}]})
    out.write(f"{ov}/system_fonts/msfonts.info", "Fonts installed by ttf-mscorefonts-installer\n")
    overlay, save = _step("allsky_overlay.py", "Overlays data"), _step("allsky_saveimage.py", "Saves", position="last")
    flows = {"day": {"overlay": overlay, "saveimage": save}, "periodic": {}, "daynight": {}, "nightday": {},
             "night": {"overlay": overlay, "test": _step("allsky_test.py", "Test module", "user"), "saveimage": save}}
    for flow, steps in flows.items():
        out.write(f"config/modules/postprocessing_{flow}.json", steps)
    out.write("config/modules/module-settings.json", {"expiry": 60, "periodictimer": 60, "watchdog": True})
    for mod in ("allsky_overlay", "allsky_saveimage", "allsky_shared"):
        out.write(f"scripts/modules/{mod}.py", f'"""Core module {mod}."""\n\n\ndef {mod}(params, event):\n'
                  '    return ""\n', 0o644)
    out.write(f"{mf}/modules/allsky_test.py", 'metaData = {"name": "Test", "module": "allsky_test"}\n\n\n'
              'def test(params, event):\n    return "ok"\n')
    out.write(f"{mf}/modules/moduledata/info/allsky_test/README", "allsky_test: a demo user module.\n")
    out.write(f"{mf}/modules/__pycache__/allsky_test.cpython-311.pyc", b"\xa7\r\r\n" + rng.randbytes(600))
    out.write(f"{mf}/db_data.json", {"allsky_test": {"table": "allsky_test", "columns": ["timestamp", "value"]}})
    out.write(f"{mf}/secrets.json", {"OPENWEATHER_APIKEY": rng.randbytes(16).hex()})
    out.write(f"{mf}/notificationImages/MyNotification.png", _encode(Image.new("RGB", (80, 60), (40, 40, 90)), "PNG"))
    out.write("config/db_data.json", {"allsky_camera": {"table": "allsky_camera", "columns":
              ["timestamp", "exposure", "gain", "temperature", "stars"]}})
    out.write("config/uservariables.sh", 'export MY_OBSERVATORY="Back garden"\n')
    out.write("config/remote_configuration.json", {"config": {"imagename": "image.jpg", "title": "Demo Allsky"}})
    for name, kind, mode in (("allsky.crt", "CERTIFICATE", CONFIG_FILE), ("allsky.key", "PRIVATE KEY", SECRET_FILE)):
        pem = f"-----BEGIN {kind}-----\n{rng.randbytes(48).hex()}\n-----END {kind}-----\n"
        out.write(f"config/ssl/{name}", pem, mode)
    (home / "config/logs").mkdir()
    out.write("config/backup.json", {"backupDirectory": ""})
    for name in ("dark_20s_-5C.png", "dark_30s_5C.png"):
        dark = Image.frombytes("L", (160, 120), bytes(b % 12 for b in rng.randbytes(160 * 120)))
        out.write(f"darks/{name}", _encode(dark, "PNG"), 0o644)


def _write_database(path: Path, start: datetime, hours: float, rng: random.Random) -> None:
    """A real SQLite DB in the default rollback-journal mode, as allsky_shared.py creates it."""
    rows = [(int(start.timestamp() + i * hours * 12), rng.uniform(1, 20000), rng.uniform(1, 16),
             rng.uniform(-5, 25), rng.randrange(900)) for i in range(300)]  # 300 rows spread over `hours`
    con = sqlite3.connect(path)
    with con:
        con.execute("CREATE TABLE allsky_camera (timestamp INTEGER, exposure REAL, gain REAL, temperature REAL,"
                    " stars INTEGER)")
        con.executemany("INSERT INTO allsky_camera VALUES (?, ?, ?, ?, ?)", rows)
    con.close()
    os.chmod(path, CONFIG_FILE)


def _finish_dirs(root: Path, mode: int, empty_mtime: float) -> None:
    """Bottom-up: dir modes (775 under config/, else `mode`) and mtime = that of the newest entry."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        path = Path(dirpath)
        os.chmod(path, CONFIG_DIR if path.relative_to(root).parts[:1] == ("config",) else mode)
        newest = max((os.lstat(path / n).st_mtime for n in dirnames + filenames), default=empty_mtime)
        os.utime(path, (newest, newest))


def make_demo_tree(home: Path, *, nights: int = 4, frames_per_night: int = 12,
                   frame_size: tuple[int, int] = (640, 480), last_night: date | None = None,
                   camera: tuple[str, str] = ("RPi", "HQ"), images_elsewhere: Path | None = None,
                   seed: int = 0) -> DemoTree:
    """Create a demo Allsky home (config, modules, SQLite DB, nights of real JPEGs) and describe it."""
    if nights < 1 or frames_per_night < 1 or min(frame_size) < 8:
        raise ValueError("need nights >= 1, frames_per_night >= 1 and frames of at least 8x8")
    home = Path(home).absolute()
    images = home / "images" if images_elsewhere is None else Path(images_elsewhere).absolute()
    for d in {home, images}:
        if d.exists() and any(d.iterdir()):
            raise FileExistsError(f"{d} is not empty")
    last_night = last_night or date.today() - timedelta(days=1)
    dates = [last_night - timedelta(days=n) for n in range(nights - 1, -1, -1)]
    out = _Writer(home, datetime.combine(dates[0] - timedelta(days=20), time(10, 0)))  # config predates images
    home.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{seed}:config")
    _write_config(out, camera, frame_size, rng)
    db = home / "config/myFiles/allsky.db"
    _write_database(db, datetime.combine(dates[0], time(20, 0)), nights * 24.0, rng)
    last_frame = datetime.combine(last_night, time(20, 0)).timestamp() + 60 * (frames_per_night - 1)
    os.utime(db, (last_frame, last_frame))  # capture keeps writing to the DB
    images.mkdir(parents=True, exist_ok=True)
    if images_elsewhere is not None:
        os.symlink(images, home / "images")  # as operators point ~/allsky/images at USB storage
        os.utime(home / "images", (out.clock, out.clock), follow_symlinks=False)
    img_out, sky = _Writer(images, datetime.combine(last_night, time(20, 0))), _sky(frame_size)
    for day in dates:
        _write_night(img_out, f"{day:%Y%m%d}", datetime.combine(day, time(20, 0)), frames_per_night, sky, seed)
    # A test_stretches folder, as the WebUI's stretch comparison leaves (valid per ^(2\d{7}|test\w*)$).
    start, srng = datetime.combine(last_night, time(22, 30)), random.Random(f"{seed}:stretch")
    base = _frame(sky, _stars(frame_size, srng), 0, srng)
    for k, gamma in enumerate((0.6, 0.4), start=1):
        img = base.point(lambda v, g=gamma: int(255 * (v / 255) ** g))
        img_out.write(f"test_stretches/image-{start:%Y%m%d%H%M%S}-stretch{k}.jpg", _encode(img), IMAGE_FILE,
                      start.timestamp() + 30 * k)
    if images_elsewhere is not None:
        _finish_dirs(images, IMAGE_DIR, out.clock)
    _finish_dirs(home, 0o755, out.clock)
    return DemoTree(home, images, [f"{d:%Y%m%d}" for d in dates], *camera)


def _size(text: str) -> tuple[int, int]:
    """Parse WxH."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 640x480, not {text!r}") from None
    return w, h


def _clear(path: Path) -> str | None:
    """Delete a --force target unless it looks precious; return why it was not deleted."""
    resolved, home, cwd = path.resolve(), Path.home().resolve(), Path.cwd().resolve()
    if len(resolved.parts) < 3 or resolved in (home, *home.parents, cwd, *cwd.parents) \
            or (resolved / "allsky.sh").exists():
        return f"refusing to delete {path}: too near /, your home or the working dir, or a real Allsky install"
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    return None


def main(argv: list[str] | None = None) -> int:
    """CLI: python -m allsky_tasks.demo HOME [--nights N] [--frames N] [--size WxH] [--images-elsewhere DIR]."""
    p = argparse.ArgumentParser(prog="python -m allsky_tasks.demo", description=__doc__)
    p.add_argument("home", type=Path, help="Allsky home to create, e.g. /tmp/demo/allsky")
    p.add_argument("--nights", type=int, default=4)
    p.add_argument("--frames", type=int, default=12, help="frames per night")
    p.add_argument("--size", type=_size, default=(640, 480), help="frame size WxH (default 640x480)")
    p.add_argument("--images-elsewhere", type=Path, help="put images here and symlink HOME/images to it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="delete HOME (and the images dir) if not empty")
    args = p.parse_args(argv)
    for target in (args.home, args.images_elsewhere):
        if target is None or not (target.exists() or target.is_symlink()):
            continue
        if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
            continue
        if not args.force:
            print(f"demo: {target} exists and is not empty; use --force to delete and recreate it", file=sys.stderr)
            return 2
        if (why := _clear(target)) is not None:
            print(f"demo: {why}", file=sys.stderr)
            return 2
    try:
        tree = make_demo_tree(args.home, nights=args.nights, frames_per_night=args.frames,
                              frame_size=args.size, images_elsewhere=args.images_elsewhere, seed=args.seed)
    except (ValueError, OSError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    files = [Path(d, f) for d, _, fs in os.walk(tree.home, followlinks=True) for f in fs]
    print(f"demo Allsky tree at {tree.home}: {len(tree.nights)} nights ({tree.nights[0]}..{tree.nights[-1]}) x "
          f"{args.frames} frames {args.size[0]}x{args.size[1]}, {len(files)} files, "
          f"{sum(f.lstat().st_size for f in files) / 1e6:.1f} MB, images in {tree.images}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
