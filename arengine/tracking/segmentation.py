"""Where the person is, and the room without them: selfie segmentation and a background plate.

The virtual host's ``replace`` mode can show the host's own room with the host taken out.
:class:`PersonSegmenter` runs MediaPipe's bundled selfie segmentation (the landscape model,
nothing downloads); :class:`BackgroundPlate` keeps, per pixel, the last colour seen there
while no person covered it, and fills pixels never seen that way from the seen ones around
them (wider and wider blurs of the seen pixels, normalised by how much was seen), so the
picture has no hole where the host has always stood.

No person pixel may reach the plate: a pixel is taken only from a frame whose own mask
says it is background (the image and its mask always travel together), the mask counts a
pixel as person well below even odds and is grown by a margin, and the boxes of the
tracked faces and hands (which the segmentation can miss, e.g. a hand held out) are kept
out too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

PERSON_MASK = "person_mask"  # Scene.extras key of the latest PersonMask

# A pixel is person from this probability up: MediaPipe's own examples cut at 0.5; its
# edges (hair, a moving hand) fall to 0.1-0.3, which must not count as room.
PERSON_THRESHOLD = 0.15
# The mask grows by this share of the frame height (22 px at 720p): the model's mask is
# computed at 640 px wide and upscaled, and edges are soft over about 1% of the height.
MARGIN = 0.03
BOX_PAD = 0.2  # face and hand boxes grow by this share of their size
MODEL_WIDTH = 640  # 3.4 ms a frame at 640x360 (6.9 ms at 1280x720), same mask to the eye
FILL_SCALE = 8  # never-seen pixels are estimated on a picture this many times smaller
FILL_SIGMAS = (2.0, 6.0, 18.0, 54.0)  # blurs of the seen pixels, in small-picture pixels
UNSEEN = (48, 44, 46)  # BGR of a picture whose background was never seen at all


@dataclass(frozen=True, eq=False)
class PersonMask:
    """One segmentation result: where the person is (grown by the margin, 255) and the
    room with the person removed. Both arrays are read-only; the object is shared, never
    copied (``__deepcopy__`` returns it), as it is immutable."""

    mask: np.ndarray  # (h, w) uint8
    plate: np.ndarray  # (h, w, 3) BGR uint8
    seen: float  # share of the frame's pixels ever seen as background
    frame_index: int = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> PersonMask:
        return self


class PersonSegmenter:
    """MediaPipe selfie segmentation: a person probability per pixel of a BGR image."""

    def __init__(self, max_width: int = MODEL_WIDTH) -> None:
        import mediapipe as mp

        self.max_width = max_width
        self._model = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=1)

    def segment(self, image: np.ndarray) -> np.ndarray:
        """Person probability (0..1, float32) at the model's input size (at most
        ``max_width`` wide, the image's aspect)."""
        h, w = image.shape[:2]
        if w > self.max_width:
            small = cv2.resize(image, (self.max_width, max(1, round(h * self.max_width / w))),
                               interpolation=cv2.INTER_AREA)
        else:
            small = image
        out = self._model.process(cv2.cvtColor(small, cv2.COLOR_BGR2RGB)).segmentation_mask
        return np.asarray(out, np.float32)

    def close(self) -> None:
        self._model.close()


class BackgroundPlate:
    """The room without the person, built up frame by frame (see the module docstring)."""

    def __init__(self, threshold: float = PERSON_THRESHOLD, margin: float = MARGIN,
                 box_pad: float = BOX_PAD) -> None:
        self.threshold = threshold
        self.margin = margin
        self.box_pad = box_pad
        self._plate: np.ndarray | None = None
        self._seen: np.ndarray | None = None  # bool (h, w)

    def person_mask(self, probability: np.ndarray, width: int, height: int,
                    boxes: Sequence[Sequence[float]] = ()) -> np.ndarray:
        """The keep-out mask at width x height: 255 where the person may be."""
        ph, pw = probability.shape[:2]
        small = (probability >= self.threshold).astype(np.uint8) * 255
        sx, sy = pw / width, ph / height
        for box in boxes:
            x1, y1, x2, y2 = (float(v) for v in box[:4])
            bw, bh = x2 - x1, y2 - y1
            cv2.rectangle(small, (int((x1 - self.box_pad * bw) * sx), int((y1 - self.box_pad *
                                  bh) * sy)),
                          (int((x2 + self.box_pad * bw) * sx) + 1,
                           int((y2 + self.box_pad * bh) * sy) + 1), 255, -1)
        r = max(1, round(self.margin * ph))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        small = cv2.dilate(small, kernel)
        if (pw, ph) == (width, height):
            return small
        # Linear upscaling then "any person at all": a pixel half-way to a person pixel
        # is a person pixel.
        big = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.where(big > 0, np.uint8(255), np.uint8(0))

    def update(self, image: np.ndarray, probability: np.ndarray,
               boxes: Sequence[Sequence[float]] = (), frame_index: int = 0) -> PersonMask:
        """Take the background pixels of ``image`` (its own ``probability`` map) and return
        the plate as it is now."""
        h, w = image.shape[:2]
        if self._plate is None or self._plate.shape[:2] != (h, w):
            self._plate = np.zeros((h, w, 3), np.uint8)
            self._plate[:] = UNSEEN
            self._seen = np.zeros((h, w), bool)
        assert self._seen is not None
        person = self.person_mask(probability, w, h, boxes)
        room = person == 0
        np.copyto(self._plate, image, where=room[:, :, None])
        self._seen |= room
        plate = self._plate.copy()
        seen_share = float(self._seen.mean())
        if seen_share < 1.0:
            fill_unseen(plate, self._seen)
        mask = person
        plate.setflags(write=False)
        mask.setflags(write=False)
        return PersonMask(mask, plate, seen_share, frame_index)


def fill_unseen(plate: np.ndarray, seen: np.ndarray) -> None:
    """Fill ``plate`` where ``seen`` is False from the seen pixels around (in place).

    Normalised convolution on a small copy: blur(plate x seen) / blur(seen), the smallest
    blur that reaches a pixel wins, the mean seen colour where none does.
    """
    h, w = seen.shape
    sw, sh = max(1, w // FILL_SCALE), max(1, h // FILL_SCALE)
    weight = cv2.resize(seen.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA)
    colour = cv2.resize(plate.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA)
    colour *= weight[:, :, None]
    total = float(weight.sum())
    if total <= 0:
        plate[~seen] = UNSEEN
        return
    mean = colour.reshape(-1, 3).sum(axis=0) / total
    out = np.empty((sh, sw, 3), np.float32)
    out[:] = mean
    done = np.zeros((sh, sw), bool)
    for sigma in FILL_SIGMAS:
        num = cv2.GaussianBlur(colour, (0, 0), sigma)
        den = cv2.GaussianBlur(weight, (0, 0), sigma)
        ok = (den > 0.05) & ~done
        out[ok] = num[ok] / den[ok, None]
        done |= ok
    # Seen parts of the small picture keep their own colour (no blur across the edge).
    exact = weight > 0.999
    out[exact] = colour[exact] / weight[exact, None]
    big = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    np.copyto(plate, np.clip(big + 0.5, 0, 255).astype(np.uint8), where=~seen[:, :, None])
