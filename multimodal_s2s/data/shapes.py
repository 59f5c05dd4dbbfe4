"""Procedural scenes (seeded): shapes of several kinds, colours and sizes at different places on
varied textured backgrounds, with captions from a small grammar and per-pixel class masks.

Scene ``i`` of a ``ShapeScenes(seed=s)`` is always the same (its generator is seeded with
``(s, i)``), so datasets need no files. The captioning task reads the captions, which name
each object's size, colour and kind and, for two objects, their spatial relation; the
segmentation task reads the masks (0 = background, k = the k-th kind in SHAPE_KINDS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPE_KINDS = ("circle", "square", "triangle", "diamond")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 230),
    "yellow": (235, 215, 40),
    "purple": (150, 60, 190),
    "white": (245, 245, 245),
}
SIZES = {"small": 0.16, "large": 0.30}  # object width as a share of the image side
MIN_GAP = 0.06  # free space kept between two objects, as a share of the image side
BACKGROUND_CLASS = 0
CLASS_NAMES = ("background", *SHAPE_KINDS)


@dataclass(frozen=True)
class SceneObject:
    kind: str
    colour: str
    size: str
    centre: tuple[float, float]  # (x, y) as shares of the image side


@dataclass
class Scene:
    image: Image.Image  # RGB, image_size x image_size
    mask: np.ndarray  # (H, W) uint8 class indices
    objects: list[SceneObject]
    captions: list[str]  # every correct description (several references)


class ShapeScenes:
    """An endless, seeded family of scenes; ``scenes[i]`` renders scene i."""

    def __init__(self, seed: int = 0, image_size: int = 64, max_objects: int = 2):
        if not 1 <= max_objects <= 2:
            raise ValueError(f"max_objects must be 1 or 2, got {max_objects}")
        self.seed, self.image_size, self.max_objects = seed, image_size, max_objects

    def __getitem__(self, index: int) -> Scene:
        rng = np.random.default_rng([self.seed, index])
        objects = _place_objects(rng, int(rng.integers(1, self.max_objects + 1)))
        image = Image.fromarray(_background(rng, self.image_size))
        mask = Image.new("L", image.size, BACKGROUND_CLASS)
        for obj in objects:
            _draw(ImageDraw.Draw(image), obj, self.image_size, fill=COLOURS[obj.colour])
            _draw(ImageDraw.Draw(mask), obj, self.image_size, fill=SHAPE_KINDS.index(obj.kind) + 1)
        return Scene(image, np.asarray(mask, dtype=np.uint8), objects, describe(objects))


def describe(objects: list[SceneObject]) -> list[str]:
    """All captions of a scene: "a small red circle", or "A left of B" / "B right of A" (or above/below)."""
    phrase = [f"a {o.size} {o.colour} {o.kind}" for o in objects]
    if len(objects) == 1:
        return [phrase[0]]
    (ax, ay), (bx, by) = objects[0].centre, objects[1].centre
    if abs(ax - bx) >= abs(ay - by):
        (first, second), forward, backward = ((0, 1) if ax < bx else (1, 0)), "left of", "right of"
    else:
        (first, second), forward, backward = ((0, 1) if ay < by else (1, 0)), "above", "below"
    return [f"{phrase[first]} {forward} {phrase[second]}", f"{phrase[second]} {backward} {phrase[first]}"]


def _place_objects(rng: np.random.Generator, count: int) -> list[SceneObject]:
    objects: list[SceneObject] = []
    while len(objects) < count:
        size = str(rng.choice(list(SIZES)))
        half = SIZES[size] / 2
        centre = tuple(float(c) for c in rng.uniform(half + 0.02, 1 - half - 0.02, size=2))
        candidate = SceneObject(str(rng.choice(SHAPE_KINDS)), str(rng.choice(list(COLOURS))), size, centre)
        if all(_apart(candidate, other) for other in objects) and all(candidate.colour != o.colour for o in objects):
            objects.append(candidate)
    return objects


def _apart(a: SceneObject, b: SceneObject) -> bool:
    """True when the boxes of a and b are separated by at least MIN_GAP along some axis."""
    reach = (SIZES[a.size] + SIZES[b.size]) / 2 + MIN_GAP
    return abs(a.centre[0] - b.centre[0]) >= reach or abs(a.centre[1] - b.centre[1]) >= reach


def _background(rng: np.random.Generator, side: int) -> np.ndarray:
    """(side, side, 3) uint8: a muted base colour with a gradient, stripes or noise texture."""
    base = rng.uniform(60, 140, size=3)
    yy, xx = np.mgrid[0:side, 0:side] / side
    style = rng.integers(3)
    if style == 0:
        texture = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1))[..., None] * 40
    elif style == 1:
        period = rng.uniform(4, 12)
        texture = (np.sin((xx + yy * rng.uniform(-1, 1)) * side * 2 * np.pi / period) * 15)[..., None]
    else:
        texture = rng.normal(0, 12, size=(side, side, 1))
    return np.clip(base + texture, 0, 255).astype(np.uint8)


def _draw(draw: ImageDraw.ImageDraw, obj: SceneObject, side: int, fill) -> None:
    cx, cy = obj.centre[0] * side, obj.centre[1] * side
    r = SIZES[obj.size] * side / 2
    box = (cx - r, cy - r, cx + r, cy + r)
    if obj.kind == "circle":
        draw.ellipse(box, fill=fill)
    elif obj.kind == "square":
        draw.rectangle(box, fill=fill)
    elif obj.kind == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
