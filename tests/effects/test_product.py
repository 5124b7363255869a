"""Product sticker: drawn clear of faces, and its click region matches what is drawn."""

from __future__ import annotations

import numpy as np
import pytest

from arengine.effects import create_effect
from arengine.effects.layout import Rect
from arengine.effects.product import ClickRegion, ProductSticker
from arengine.state import ProductView, RoomState
from arengine.tracking import FaceTracker
from arengine.types import Scene

PRODUCT = ProductView("sku-1", "Velvet Ruby Lipstick 丝绒口红", "¥129", "https://shop.example/1")


def draw(layer: ProductSticker, t: float, w: int = 1280, h: int = 720,
         scene: Scene | None = None) -> np.ndarray:
    frame = np.full((h, w, 3), 70, np.uint8)
    sc = scene.at(t, int(t * 25)) if scene is not None else Scene.empty(w, h, t, int(t * 25))
    return layer.apply(frame, sc)


def test_registered_and_validates() -> None:
    assert isinstance(create_effect("product"), ProductSticker)
    with pytest.raises(ValueError, match="RRGGBB"):
        ProductSticker(accent="pink")


def test_no_product_nothing_drawn_no_regions() -> None:
    layer = ProductSticker()
    assert layer.click_regions(1280, 720) == []
    layer.set_state(RoomState("r", taken_at=1000.0))
    assert (draw(layer, 1.0) == 70).all()
    assert layer.click_regions(1280, 720) == []


def test_click_region_matches_the_drawn_card() -> None:
    layer = ProductSticker()
    layer.set_state(RoomState("r", taken_at=1000.0, product=PRODUCT))
    before_draw = layer.click_regions(1280, 720)
    draw(layer, 1.0)
    frame = draw(layer, 2.0)  # after the entry animation
    (region,) = layer.click_regions()
    assert isinstance(region, ClickRegion)
    assert region.id == "sku-1" and region.url == "https://shop.example/1"
    assert region == before_draw[0]  # the default place is where it went
    assert region.x >= 0 and region.x + region.w <= 1 and region.y >= 0
    assert region.y + region.h <= 1
    x, y = round(region.x * 1280), round(region.y * 720)
    w, h = round(region.w * 1280), round(region.h * 720)
    changed = (frame != 70).any(axis=2)
    ys, xs = np.nonzero(changed)
    assert xs.min() == x and ys.min() == y and xs.max() == x + w - 1 and ys.max() == y + h - 1
    assert region.contains(region.x + region.w / 2, region.y + region.h / 2)
    assert not region.contains(0.99, 0.01)
    assert region.to_dict()["id"] == "sku-1"


def test_card_changes_with_the_price() -> None:
    layer = ProductSticker()
    a = layer.card(PRODUCT, 1.0)
    b = layer.card(ProductView("sku-1", PRODUCT.name, "¥99"), 1.0)
    assert a is layer.card(PRODUCT, 1.0)
    assert not (a.shape == b.shape and np.array_equal(a, b))


def test_readable_at_480p() -> None:
    layer = ProductSticker()
    layer.set_state(RoomState("r", taken_at=1000.0, product=PRODUCT))
    draw(layer, 1.0, 854, 480)
    frame = draw(layer, 2.0, 854, 480)
    (region,) = layer.click_regions()
    r = Rect(round(region.x * 854), round(region.y * 480), round(region.w * 854),
             round(region.h * 480))
    crop = frame[r.y:r.y2, r.x:r.x2]
    white_rows = (crop.min(axis=2) > 200).any(axis=1).sum()
    assert r.h >= 50 and white_rows >= 20  # name line and the button label


def test_avoids_faces_on_real_pictures(load_image) -> None:
    with FaceTracker(mode="image") as ft:
        for name in ("mediapipe_samples/business-person.png", "faces/obama-720p.jpg",
                     "faces/two_people.jpg"):
            img = load_image(name)
            scene = ft.track(img, 0.0)
            faces = [Rect.from_xyxy(b) for b in scene.faces.boxes()]
            assert faces
            layer = ProductSticker()
            layer.set_state(RoomState("r", taken_at=1000.0, product=PRODUCT))
            layer.apply(img.copy(), scene.at(1.0, 1))
            (region,) = layer.click_regions()
            h, w = img.shape[:2]
            r = Rect(round(region.x * w), round(region.y * h), round(region.w * w),
                     round(region.h * h))
            assert all(not r.intersects(f) for f in faces), (name, r, faces)
