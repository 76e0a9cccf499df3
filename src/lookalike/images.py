"""Decode and validate images: bytes in, an RGB ``uint8`` array ``(H, W, 3)`` out.

Every photo goes through :func:`decode_image` before face detection, which

* checks the pixel count from the header *before* decoding anything, so a "decompression bomb" (a small file
  that claims to be 30,000 x 30,000 pixels) is refused cheaply with :class:`~lookalike.errors.ImageTooLarge`;
* decodes the whole file and refuses truncated or corrupt ones (no silently grey half-images);
* applies the EXIF orientation, so a phone photo taken sideways comes out upright;
* converts every Pillow mode (grayscale, palette, alpha, CMYK, 16-bit, float, 1-bit) to 8-bit RGB, putting
  transparent areas on white.

Failures raise :class:`~lookalike.errors.ImageError` (or its subclass ``ImageTooLarge``) naming the URI.
"""

from __future__ import annotations

import io
import threading
import warnings
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps

from lookalike.errors import ImageError, ImageTooLarge, InvalidArgument

#: Default limit on width x height (64 megapixels: a 9,000 x 7,000 photo passes, a bomb does not).
DEFAULT_MAX_PIXELS = 64_000_000

#: EXIF orientations that swap width and height (rotations by 90 or 270 degrees, with or without mirror).
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION_TAG = 0x0112
_WHITE = (255, 255, 255, 255)
_TOO_LARGE_HINT = "raise max_pixels if it is a real photo"

# A truncated file must fail, never decode into a partly grey image. This is Pillow's default; we make sure
# nothing in the process turned it on before us.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# ``warnings.catch_warnings`` changes process-wide state; serialise the (fast) header parse that uses it.
_OPEN_LOCK = threading.Lock()


def _allow_pillow_pixels(max_pixels: int) -> None:
    """Make sure Pillow's own bomb guard is not stricter than ours (ours runs first and names the URI)."""
    current = Image.MAX_IMAGE_PIXELS
    if current is not None and current < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _open(data: bytes, uri: str) -> Image.Image:
    """Open ``data`` lazily (header only) and return the Pillow image; raise ``ImageError`` if impossible."""
    if not data:
        raise ImageError(f"cannot decode {uri}: the file is empty (0 bytes)")
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            # Pillow warns above Image.MAX_IMAGE_PIXELS; our own check right after gives a better message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:  # above 2 x Image.MAX_IMAGE_PIXELS: Pillow refuses to open
        raise ImageTooLarge(
            f"cannot decode {uri}: far too many pixels (Pillow's guard: {exc})", hint=_TOO_LARGE_HINT
        ) from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageError(
            f"cannot decode {uri}: not an image format Pillow knows ({len(data)} bytes, starting {data[:8]!r})",
            hint="is this really a photo? supported: JPEG, PNG, WebP, BMP, GIF, TIFF, PNM",
        ) from exc
    except Exception as exc:  # Pillow plugins raise many types (SyntaxError, struct.error...) on bad headers
        raise ImageError(f"cannot decode {uri}: corrupt image header ({type(exc).__name__}: {exc})") from exc


def _check_pixels(img: Image.Image, uri: str, max_pixels: int) -> None:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError(f"cannot decode {uri}: the header says {width}x{height} pixels")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"cannot decode {uri}: {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}",
            hint=_TOO_LARGE_HINT,
        )


def _load(img: Image.Image, uri: str) -> None:
    """Decode every pixel now, so that truncated or corrupt data raises here."""
    try:
        img.load()
    except Exception as exc:  # OSError("image file is truncated"), SyntaxError("broken PNG file"), ...
        raise ImageError(
            f"cannot decode {uri}: truncated or corrupt {img.format or 'image'} data ({type(exc).__name__}: {exc})",
            hint="re-download or re-export the file",
        ) from exc


def _exif_transpose(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; an unreadable EXIF block is ignored (the pixels are still fine). An upright
    photo (most of them) is returned as it is: Pillow's ``exif_transpose`` would copy it."""
    if _orientation(img) in (0, 1):
        return img
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # broken EXIF must not cost us the photo
        return img


def _scale_to_uint8(values: np.ndarray) -> np.ndarray:
    """Map a 16-bit, 32-bit integer or float grayscale array to ``uint8``.

    * unsigned 16-bit (and 32-bit integers within 0..65535): ``round(v / 257)``, so 65535 becomes 255;
    * floats within 0..1: ``v * 255``; floats within 0..255: as they are;
    * anything else (negative, larger): stretched from its min..max to 0..255.
    """
    if values.dtype.kind == "f":
        values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(values.min()), float(values.max())
        if low >= 0.0 and high <= 1.0:
            return np.rint(values * 255.0).astype(np.uint8)
        if low >= 0.0 and high <= 255.0:
            return np.rint(values).astype(np.uint8)
        return _stretch(values, low, high)
    wide = values.astype(np.int64)
    low_i, high_i = int(wide.min()), int(wide.max())
    if low_i >= 0 and high_i <= 65535:
        return ((wide + 128) // 257).astype(np.uint8)
    return _stretch(wide.astype(np.float64), float(low_i), float(high_i))


def _stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8)


def _has_alpha(img: Image.Image) -> bool:
    """Whether the image has an alpha channel or a transparent colour (palette or PNG ``tRNS``)."""
    return img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info


def _to_rgb(img: Image.Image, uri: str) -> np.ndarray:
    """Any Pillow mode to a contiguous, writable ``uint8`` array ``(H, W, 3)``."""
    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        gray = _scale_to_uint8(np.array(img))
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "RGB":
        return np.array(img, dtype=np.uint8)
    if _has_alpha(img):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", img.size, _WHITE)
        return np.array(Image.alpha_composite(background, rgba).convert("RGB"), dtype=np.uint8)
    try:
        return np.array(img.convert("RGB"), dtype=np.uint8)
    except (ValueError, OSError) as exc:
        raise ImageError(f"cannot decode {uri}: unsupported colour mode {mode!r}") from exc


def decode_image(data: bytes, *, uri: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes into an upright RGB ``uint8`` array of shape ``(H, W, 3)``.

    Args:
        data: the file's bytes (JPEG, PNG, WebP, BMP, GIF - first frame -, TIFF, PNM...).
        uri: where the bytes came from; only used in error messages.
        max_pixels: refuse images whose header claims more than this many pixels (width x height), before
            decoding them.

    Raises:
        ImageTooLarge: the header claims more than ``max_pixels`` pixels.
        ImageError: empty data, not an image, or a corrupt or truncated file.
    """
    _allow_pillow_pixels(max_pixels)
    img = _open(data, uri)
    try:
        _check_pixels(img, uri, max_pixels)
        _load(img, uri)
        upright = _exif_transpose(img)
        return _to_rgb(upright, uri)
    finally:
        img.close()


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_EXIF_ORIENTATION_TAG, 1)
        return int(value)
    except Exception:  # broken EXIF: treat as upright, like decode_image does
        return 1


def image_size(data: bytes, *, uri: str = "<bytes>") -> tuple[int, int]:
    """``(width, height)`` as :func:`decode_image` would return it, read from the header only.

    Cheap: no pixel is decoded. The EXIF orientation is taken into account (a sideways phone photo stored
    as 4000x3000 reports 3000x4000). Raises :class:`~lookalike.errors.ImageError` if the header is unreadable.
    """
    _allow_pillow_pixels(DEFAULT_MAX_PIXELS)
    img = _open(data, uri)
    try:
        width, height = img.size
        if _orientation(img) in _SWAPPING_ORIENTATIONS:
            return height, width
        return width, height
    finally:
        img.close()


def encode_jpeg(arr: np.ndarray[Any, Any], quality: int = 90) -> bytes:
    """Encode an RGB ``(H, W, 3)`` or grayscale ``(H, W)`` ``uint8`` array as JPEG bytes (for thumbnails).

    Raises :class:`~lookalike.errors.InvalidArgument` for another shape or dtype, or a quality outside 1..100.
    """
    if not 1 <= quality <= 100:
        raise InvalidArgument(f"JPEG quality must be between 1 and 100, not {quality}")
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise InvalidArgument(
            f"encode_jpeg needs a uint8 array of shape (H, W, 3) or (H, W), not {arr.dtype} {arr.shape}"
        )
    if arr.size == 0:
        raise InvalidArgument(f"encode_jpeg got an empty array of shape {arr.shape}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
