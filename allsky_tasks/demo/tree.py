"""Create a whole demo Allsky home (config, database, nights of images) and describe it (DemoTree)."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from .config import write_config, write_database
from .images import encode, frame, sky_image, star_field, write_night
from .writer import IMAGE_DIR, IMAGE_FILE, Writer, finish_dirs

__all__ = ["DemoTree", "make_demo_tree"]


@dataclass(frozen=True)
class DemoTree:
    """What make_demo_tree created."""

    home: Path
    images: Path
    nights: list[str]
    camera_type: str
    camera_model: str


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
    out = Writer(home, datetime.combine(dates[0] - timedelta(days=20), time(10, 0)))  # config predates images
    home.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{seed}:config")
    write_config(out, camera, frame_size, rng)
    db = home / "config/myFiles/allsky.db"
    write_database(db, datetime.combine(dates[0], time(20, 0)), nights * 24.0, rng)
    last_frame = datetime.combine(last_night, time(20, 0)).timestamp() + 60 * (frames_per_night - 1)
    os.utime(db, (last_frame, last_frame))  # capture keeps writing to the DB
    images.mkdir(parents=True, exist_ok=True)
    if images_elsewhere is not None:
        os.symlink(images, home / "images")  # as operators point ~/allsky/images at USB storage
        os.utime(home / "images", (out.clock, out.clock), follow_symlinks=False)
    img_out, sky = Writer(images, datetime.combine(last_night, time(20, 0))), sky_image(frame_size)
    for day in dates:
        write_night(img_out, f"{day:%Y%m%d}", datetime.combine(day, time(20, 0)), frames_per_night, sky, seed)
    # A test_stretches folder, as the WebUI's stretch comparison leaves (valid per ^(2\d{7}|test\w*)$).
    start, srng = datetime.combine(last_night, time(22, 30)), random.Random(f"{seed}:stretch")
    base = frame(sky, star_field(frame_size, srng), 0, srng)
    for k, gamma in enumerate((0.6, 0.4), start=1):
        img = base.point(lambda v, g=gamma: int(255 * (v / 255) ** g))
        img_out.write(f"test_stretches/image-{start:%Y%m%d%H%M%S}-stretch{k}.jpg", encode(img), IMAGE_FILE,
                      start.timestamp() + 30 * k)
    if images_elsewhere is not None:
        finish_dirs(images, IMAGE_DIR, out.clock)
    finish_dirs(home, 0o755, out.clock)
    return DemoTree(home, images, [f"{d:%Y%m%d}" for d in dates], *camera)
