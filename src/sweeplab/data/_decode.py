"""Worker side of the image-folder decoder: bytes or file paths in, one uint8 array out.

Kept free of torch (numpy and Pillow only) because it runs in worker processes, and it returns
problems as values rather than raising them: exceptions that cross a process boundary lose their
attributes, and the parent wants the member name to put in the user's error message.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

# Modes kept as one grey channel; everything else (RGB, RGBA, P, CMYK, ...) becomes RGB.
_GREY_MODES = {"1", "L", "LA"}


@dataclass
class Chunk:
    """Decoded images of one chunk, in input order."""

    images: np.ndarray | None  # (n, H, W, C) uint8, C = 1 only when every image was grey
    digests: list[str] | None  # sha256 of each file's bytes, when asked for
    error: tuple[str, str] | None = None  # (member name, problem)


def decode_chunk(jobs: list[tuple[str, bytes | str]], want_digests: bool = False) -> Chunk:
    """Decode ``(name, payload)`` pairs, payload being the file bytes or a path to read.

    All images of a chunk must have the same size; the parent checks sizes across chunks.
    """
    arrays: list[np.ndarray] = []
    digests: list[str] = []
    first_name, first_size = "", (0, 0)
    for name, payload in jobs:
        try:
            if isinstance(payload, str):
                with open(payload, "rb") as f:
                    data = f.read()
            else:
                data = payload
            if want_digests:
                digests.append(hashlib.sha256(data).hexdigest())
            with Image.open(io.BytesIO(data)) as im:
                mode = "L" if im.mode in _GREY_MODES else "RGB"
                arr = np.asarray(im if im.mode == mode else im.convert(mode))
        except UnidentifiedImageError:
            return Chunk(None, None, (name, "is not an image file Pillow can read"))
        except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt image data
            return Chunk(None, None, (name, f"cannot be decoded ({exc})"))
        size = (arr.shape[1], arr.shape[0])
        if not arrays:
            first_name, first_size = name, size
        elif size != first_size:
            return Chunk(
                None,
                None,
                (name, f"is {size[0]}x{size[1]} but {first_name} is {first_size[0]}x{first_size[1]}; "
                 "all images must have the same size"),
            )
        arrays.append(arr)
    if not arrays:
        return Chunk(np.zeros((0, 0, 0, 1), np.uint8), digests if want_digests else None)
    if all(a.ndim == 2 for a in arrays):
        images = np.stack(arrays)[..., None]
    else:
        images = np.stack([np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in arrays])
    return Chunk(images, digests if want_digests else None)
