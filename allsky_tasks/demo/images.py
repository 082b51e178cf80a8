"""The demo tree's night folders: sky frames with real noise, thumbnails, keogram, startrails, a video."""

from __future__ import annotations

import io
import math
import random
import struct
from datetime import datetime, timedelta

from PIL import Image, ImageChops, ImageDraw

from .writer import IMAGE_FILE, Writer

__all__ = ["THUMB_WIDTH", "encode", "frame", "sky_image", "star_field", "thumb", "write_night"]

# Tuned: a 640x480 frame is ~200 KB at quality 90 (4:4:4) and zstd -3 saves ~1%, like real sky JPEGs.
NOISE_LUT = [v * 36 // 256 for v in range(256)]
THUMB_WIDTH, VIDEO_PAYLOAD = 100, 200 * 1024



def encode(img: Image.Image, fmt: str = "JPEG", quality: int = 90) -> bytes:
    """Encode an image; JPEGs are 4:4:4 so the colour noise survives, as in sensor JPEGs."""
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": quality, "subsampling": 0} if fmt == "JPEG" else {}))
    return buf.getvalue()


def thumb(img: Image.Image) -> bytes:
    """A JPEG thumbnail THUMB_WIDTH px wide, as saveImage.sh and thumbnail.sh make."""
    size = (THUMB_WIDTH, max(1, round(THUMB_WIDTH * img.height / img.width)))
    return encode(img.resize(size, Image.Resampling.BILINEAR), quality=80)


def sky_image(size: tuple[int, int]) -> Image.Image:
    """Fisheye night sky: dark zenith, glow towards the horizon, black outside the lens circle."""
    d = min(size)
    glow = Image.radial_gradient("L").resize((d, d)).point(lambda v: 3 + v * 40 // 255)
    mask = Image.new("L", (d, d), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, d - 1, d - 1), fill=255)
    lum = Image.new("L", size, 0)
    lum.paste(glow, ((size[0] - d) // 2, (size[1] - d) // 2), mask)
    return Image.merge("RGB", (lum.point(lambda v: v * 3 // 4), lum.point(lambda v: v * 7 // 8), lum))


def star_field(size: tuple[int, int], rng: random.Random) -> list[tuple[float, float, int]]:
    """A few hundred stars as (radius, angle, brightness) around the image centre (the pole, simply)."""
    radius = min(size) / 2 - 2
    return [(radius * math.sqrt(rng.random()), rng.uniform(0, math.tau), rng.randrange(70, 256)) for _ in range(300)]


def frame(sky: Image.Image, stars: list[tuple[float, float, int]], minute: int, rng: random.Random) -> Image.Image:
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


def write_night(out: Writer, night: str, start: datetime, frames: int, sky: Image.Image, seed: int) -> None:
    """One night folder: frames, thumbnails, keogram, startrails, timelapse and their thumbnails."""
    stars, (w, h) = star_field(sky.size, random.Random(f"{seed}:{night}:stars")), sky.size
    trails, columns, mid, last = None, [], None, start.timestamp()
    for i in range(frames):
        stamp = start + timedelta(seconds=60 * i)
        name, last = f"image-{stamp:%Y%m%d%H%M%S}.jpg", stamp.timestamp()
        img = frame(sky, stars, i, random.Random(f"{seed}:{stamp:%Y%m%d%H%M%S}"))
        out.write(f"{night}/{name}", encode(img), IMAGE_FILE, last)
        out.write(f"{night}/thumbnails/{name}", thumb(img), IMAGE_FILE, last + 1)
        # Keogram = the centre column of every frame; startrails = the per-pixel maximum of all frames.
        columns.append(img.crop((w // 2, 0, w // 2 + 1, h)))
        trails = img if trails is None else ImageChops.lighter(trails, img)
        mid = img if i == frames // 2 else mid
    assert trails is not None and mid is not None  # make_demo_tree asks for one frame at least
    keogram = Image.new("RGB", (len(columns), h))
    for x, col in enumerate(columns):
        keogram.paste(col, (x, 0))
    done = last + 600  # generateForDay.sh runs after the night ends
    for kind, img in (("keogram", keogram.resize((w, h), Image.Resampling.NEAREST)), ("startrails", trails)):
        out.write(f"{night}/{kind}/{kind}-{night}.jpg", encode(img), IMAGE_FILE, done)
        out.write(f"{night}/{kind}thumbnail/{kind}-{night}.jpg", thumb(img), IMAGE_FILE, done + 5)
    # No ffmpeg here: an ISO-BMFF-looking stand-in, a valid ftyp box then an mdat box of random bytes.
    ftyp = b"isom" + struct.pack(">I", 0x200) + b"isomiso2avc1mp41"
    mdat = random.Random(f"{seed}:{night}:video").randbytes(VIDEO_PAYLOAD)
    mp4 = struct.pack(">I", 8 + len(ftyp)) + b"ftyp" + ftyp + struct.pack(">I", 8 + len(mdat)) + b"mdat" + mdat
    out.write(f"{night}/allsky-{night}.mp4", mp4, IMAGE_FILE, done + 60)
    out.write(f"{night}/videothumbnail/allsky-{night}.jpg", thumb(mid), IMAGE_FILE, done + 65)
