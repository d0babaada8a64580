"""Faces in a photo: found by OpenCV's frontal-face detector or given by hand, each framed like the training faces.

The detector is the Haar cascade `haarcascade_frontalface_default.xml` that the 4.x wheels of
`opencv-python-headless` carry (the optional extra `torchlab[faces]`; it runs offline).

The training faces are squares around the face's landmarks, enlarged 1.3x. The detector's box
is tighter and sits higher: on the 3,452 real faces of the development set (each pasted 1.5x,
2x and 3x enlarged on a gray background, 97-98% found) the training square's side is 1.19x the
detector's box side (median; 10% of the faces below 1.05x, 10% above 1.35x) and its center lies
0.16 box sides below the box's center (sideways: 0.00, spread 0.11). `face_square` applies
these medians, so a detected face reaches the model framed as the training faces were. A box
given by hand (--box) is framed the same way: give the box a detector would draw, from the
eyebrows to the chin and cheek to cheek (a detected face's printed box can be passed back).

Boxes and squares are in photo pixels as OpenCV gives them: (x, y) is the top-left pixel, w and
h count pixels, so a box covers columns x .. x + w - 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from torchlab.data.keypoints import IMAGE_SIZE
from torchlab.errors import UsageError

INSTALL_HINT = "pip install torchlab[faces]"
CASCADE = "haarcascade_frontalface_default.xml"
SQUARE_PER_BOX = 1.19  # training square side / detector box side (median over the development faces)
SQUARE_DROP = 0.16  # training square center - detector box center, downwards, in box sides
MIN_FACE = 24  # pixels: the cascade's smallest window; a photo or --box smaller than this holds no usable face
# Bytes a pixel of a face square costs while it is cut and shrunk to 96x96 (float32 gather, scaled and clipped
# copies, uint8 image and Pillow's copy): 4 + 4 + 4 + 1 + 1, rounded up.
CROP_BYTES_PER_PIXEL = 16
DETECT_SIDE = 1024  # larger photos are shrunk to this longest side for detection (seconds -> a fraction)


@dataclass(frozen=True)
class Box:
    """A face's box in photo pixels: top-left pixel (x, y), width and height."""

    x: float
    y: float
    w: float
    h: float

    def as_dict(self) -> dict[str, float]:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h}


def parse_box(text: str) -> tuple[float, float, float, float]:
    """'X,Y,W,H' (the --box flag) -> four numbers; anything else is a one-line UsageError."""
    try:
        x, y, w, h = (float(v) for v in str(text).split(","))
    except ValueError:
        raise UsageError(f"--box takes X,Y,W,H in photo pixels (e.g. 150,100,220,220), got {text!r}") from None
    return x, y, w, h


def check_box(box: tuple[float, float, float, float] | Box, width: int, height: int) -> Box:
    """A hand-given face box that fits a width x height photo: finite, at least MIN_FACE pixels, center inside."""
    x, y, w, h = (box.x, box.y, box.w, box.h) if isinstance(box, Box) else box
    shown = f"{x:g},{y:g},{w:g},{h:g}"
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise UsageError(f"--box must be finite numbers X,Y,W,H, got {shown}")
    if min(w, h) < MIN_FACE:
        raise UsageError(
            f"--box W and H must be at least {MIN_FACE} pixels (smaller faces hold too little detail), got {shown}"
        )
    if not (0 <= x + w / 2 < width and 0 <= y + h / 2 < height):
        raise UsageError(f"--box {shown} is not on the {width}x{height} photo: its center must lie inside it")
    return Box(x, y, w, h)


def detector_available() -> bool:
    """Whether OpenCV (torchlab[faces]) can be imported."""
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def detect_faces(gray: np.ndarray) -> list[Box]:
    """Frontal faces in a gray photo (H, W) in [0, 1], left to right; a UsageError when OpenCV is missing."""
    try:
        import cv2
        import cv2.data  # the folder of the bundled cascades (cv2 imports it too; its stubs do not say so)
    except ImportError:
        raise UsageError(f"face detection needs OpenCV: {INSTALL_HINT} (or give the face with --box X,Y,W,H)") from None
    path = cv2.data.haarcascades + CASCADE
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise UsageError(
            f'this OpenCV has no {CASCADE} (the 5.x wheels ship none): pip install "opencv-python-headless<5"'
        )
    image: np.ndarray = np.clip(np.rint(gray * 255.0), 0, 255).astype(np.uint8)
    shrink = max(1.0, max(image.shape) / DETECT_SIDE)
    if shrink > 1.0:
        size = (round(image.shape[1] / shrink), round(image.shape[0] / shrink))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    found = cascade.detectMultiScale(image, scaleFactor=1.1, minNeighbors=5, minSize=(MIN_FACE, MIN_FACE))
    boxes = [Box(*(round(float(v) * shrink, 1) for v in b)) for b in (found if len(found) else [])]
    return sorted(boxes, key=lambda b: (b.x, b.y))


def face_square(box: Box) -> tuple[int, int, int]:
    """The square (x0, y0, side) the model sees for a face box: enlarged and moved down like the training faces."""
    side = max(1, round(max(box.w, box.h) * SQUARE_PER_BOX))
    cx = box.x - 0.5 + box.w / 2  # the box's center in pixel-centered coordinates
    cy = box.y - 0.5 + box.h / 2 + SQUARE_DROP * box.h
    return round(cx + 0.5 - side / 2), round(cy + 0.5 - side / 2), side


def center_square(width: int, height: int) -> tuple[int, int, int]:
    """The largest square in the middle of a width x height photo: (x0, y0, side)."""
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side


def cut_square(gray: np.ndarray, square: tuple[int, int, int]) -> np.ndarray:
    """The pixels of `square` (x0, y0, side); parts outside the photo repeat its nearest edge pixels."""
    x0, y0, side = square
    height, width = gray.shape
    rows = np.clip(np.arange(y0, y0 + side), 0, height - 1)
    cols = np.clip(np.arange(x0, x0 + side), 0, width - 1)
    return gray[np.ix_(rows, cols)]


Square = tuple[int, int, int]  # (x0, y0, side) in photo pixels


def photo_to_face(gray: np.ndarray, square: Square | None = None) -> tuple[np.ndarray, Square]:
    """Gray photo (H, W) in [0, 1] -> (96x96 gray levels 0..255, square (x0, y0, side)).

    The square defaults to the photo's central one; parts of a square outside the photo repeat its edge.
    """
    from torchlab.data.images import resize

    square = square or center_square(gray.shape[1], gray.shape[0])
    face = resize(cut_square(gray, square), IMAGE_SIZE, IMAGE_SIZE)
    return np.clip(face * 255.0, 0, 255), square


def face_to_photo(points: np.ndarray, crop: Square) -> np.ndarray:
    """Keypoints in the 96x96 face (..., 2) -> the photo's pixels.

    Pixel j of the face covers [j, j + 1) * side / 96 of the square (resampling works on pixel
    areas), so its center j lies at (j + 0.5) * side / 96 - 0.5 in pixel-centered photo coordinates.
    """
    x0, y0, side = crop
    scale = side / IMAGE_SIZE
    return (points + 0.5) * scale - 0.5 + np.array([x0, y0], dtype=np.float64)


def find_faces(
    gray: np.ndarray, boxes: Sequence[Any] = (), detect: bool | None = None
) -> tuple[list[Box], str, str | None]:
    """(face boxes, how they were found, note): hand-given `boxes`, else the detector's, else none.

    detect=None uses the detector when OpenCV is installed; True insists (a UsageError naming the
    install command without it); False never detects. No boxes means: use the center square (the note says why).
    """
    height, width = gray.shape
    if boxes:
        if detect:
            raise UsageError("give faces with --box or ask for --detect, not both")
        return [check_box(b, width, height) for b in boxes], "box", None
    if detect is False:
        return [], "center crop", None
    if detect is None and not detector_available():
        return (
            [],
            "center crop",
            (
                f"no face detector installed ({INSTALL_HINT}), so the keypoints are for the "
                "center square; give the face with --box X,Y,W,H"
            ),
        )
    found = detect_faces(gray)
    note = (
        None
        if found
        else (
            "the detector found no frontal face, so the keypoints are for the center square; "
            "give the face with --box X,Y,W,H"
        )
    )
    return found, "detector", note
