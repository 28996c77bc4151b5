"""Batched per-sample augmentation: pure functions ``(batch, generator, ...) -> batch``.

Every sample of a batch draws its own parameters, all at once, from ``generator`` (on the
generator's device; the draws move to the batch's device), and the work is a handful of tensor
ops on the whole batch: no per-sample Python loop, no PIL. Batches are NCHW, uint8 or float;
the geometric functions keep the dtype, except :func:`random_resized_crop`, which interpolates
and returns float32 (still in the input's 0..255 range).

Conventions follow torchvision: ``RandomCrop(size, padding)``, ``RandomHorizontalFlip``,
``RandomVerticalFlip``, ``RandomResizedCrop`` (same sampling, same bilinear resize of the crop;
the output matches ``torchvision.transforms.v2.functional.resized_crop(..., antialias=False)`` on
float input, and antialiasing has no effect here because crops are never larger than the output).
Cutout follows DeVries & Taylor (2017): a square centred anywhere in the image, clipped at the
border; the loader applies it after normalisation, so the square is zero in the normalised input
the model sees, i.e. the dataset's mean colour.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..config.schema import AugmentConfig


def _rand(g: torch.Generator, *size: int) -> torch.Tensor:
    return torch.rand(*size, generator=g, device=g.device)


def _randint(g: torch.Generator, high: int | torch.Tensor, n: int) -> torch.Tensor:
    """``n`` integers uniform in [0, high) (``high`` may be a per-sample tensor)."""
    u = _rand(g, n)
    if isinstance(high, torch.Tensor):
        high = high.to(u.device)
        return torch.minimum((u * high).long(), high - 1)
    return (u * high).long().clamp_(max=high - 1)  # clamp guards against u * high rounding up to high


# -- random crop with padding --------------------------------------------------------------------
def pad(x: torch.Tensor, padding: int, mode: str = "zero") -> torch.Tensor:
    """Pad H and W by ``padding`` on each side with zeros or by reflection (any dtype)."""
    if padding == 0:
        return x
    if mode == "zero":
        return F.pad(x, (padding,) * 4)
    if mode != "reflect":
        raise ValueError(f"mode must be 'zero' or 'reflect', got {mode!r}")
    h, w = x.shape[-2:]
    if padding >= min(h, w):
        raise ValueError(f"reflect padding {padding} needs images larger than {padding}x{padding}, got {h}x{w}")
    try:
        return F.pad(x, (padding,) * 4, mode="reflect")
    except (NotImplementedError, RuntimeError):
        # A backend without integer reflection padding: go through float (exact for uint8 values).
        return F.pad(x.float(), (padding,) * 4, mode="reflect").to(x.dtype)


def crop_at(xp: torch.Tensor, top: torch.Tensor, left: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-sample crops ``xp[k, :, top[k]:top[k]+height, left[k]:left[k]+width]``, in one gather.

    Each output row is a contiguous run of the (contiguous) input, so the crop is an
    ``index_select`` of rows from an overlapping strided view that starts a row at every element:
    about 4x faster on CPU than advanced indexing with per-pixel indices.
    """
    xp = xp.contiguous()
    n, c, hp, wp = xp.shape
    dev = xp.device
    top, left = top.to(dev), left.to(dev)
    # Flat offset of output row r of plane (k, ch): ((k*c + ch)*hp + r)*wp, plus the sample's shift.
    planes = torch.arange(n * c, device=dev)[:, None] * (hp * wp) + torch.arange(height, device=dev) * wp
    starts = planes.view(n, c, height) + (top * wp + left)[:, None, None]
    flat = xp.reshape(-1)
    windows = flat.as_strided((flat.numel() - width + 1, width), (1, 1))
    return windows.index_select(0, starts.reshape(-1)).view(n, c, height, width)


def random_crop(x: torch.Tensor, g: torch.Generator, padding: int, mode: str = "zero") -> torch.Tensor:
    """torchvision ``RandomCrop(size=input size, padding=padding)``, a different offset per sample."""
    if padding == 0:
        return x
    n, _, h, w = x.shape
    top = _randint(g, 2 * padding + 1, n)
    left = _randint(g, 2 * padding + 1, n)
    return crop_at(pad(x, padding, mode), top, left, h, w)


# -- flips ----------------------------------------------------------------------------------------
def random_flip(x: torch.Tensor, g: torch.Generator, dim: int, p: float = 0.5) -> torch.Tensor:
    """Flip each sample along ``dim`` with probability ``p``."""
    # torch.where rather than x[mask] = ...: boolean indexing would sync a CUDA stream.
    flip = (_rand(g, len(x)) < p).to(x.device).view(-1, *([1] * (x.dim() - 1)))
    return torch.where(flip, x.flip(dim), x)


def random_hflip(x: torch.Tensor, g: torch.Generator, p: float = 0.5) -> torch.Tensor:
    return random_flip(x, g, -1, p)


def random_vflip(x: torch.Tensor, g: torch.Generator, p: float = 0.5) -> torch.Tensor:
    return random_flip(x, g, -2, p)


# -- random resized crop --------------------------------------------------------------------------
def rrc_params(
    n: int,
    height: int,
    width: int,
    g: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    attempts: int = 10,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample ``(top, left, h, w)`` of torchvision's ``RandomResizedCrop.get_params``.

    torchvision tries up to 10 (area, aspect) draws and takes the first crop that fits, else falls
    back to a central crop of the closest allowed aspect ratio. Here all draws are made at once and
    the first fitting one is picked per sample; the distribution is the same.
    """
    area = height * width
    target = area * (scale[0] + (scale[1] - scale[0]) * _rand(g, n, attempts))
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * _rand(g, n, attempts))
    # torch.round and Python's round (torchvision) both round half to even.
    w = torch.round(torch.sqrt(target * aspect)).long()
    h = torch.round(torch.sqrt(target / aspect)).long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(1, keepdim=True)  # index of the first fitting draw
    found = fits.any(1)
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)

    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(height * max(ratio))), height
    else:
        fw, fh = width, height
    fw, fh = max(1, min(fw, width)), max(1, min(fh, height))
    w = torch.where(found, w, fw)
    h = torch.where(found, h, fh)
    top = torch.where(found, _randint(g, height - h + 1, n), (height - h) // 2)
    left = torch.where(found, _randint(g, width - w + 1, n), (width - w) // 2)
    return top, left, h, w


def resized_crop(
    x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: torch.Tensor, w: torch.Tensor,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Crop each sample to its box and resize it bilinearly to ``size`` (default: the input size).

    One ``grid_sample`` over the batch. The sampling grid reproduces crop-then-``interpolate``
    (half-pixel centres, ``align_corners=False``) exactly, including clamping at the crop's own
    edges, so pixels outside a crop never bleed into it.
    """
    n, _, in_h, in_w = x.shape
    out_h, out_w = size or (in_h, in_w)
    dev = x.device
    gy = _source_coords(top.to(dev), h.to(dev), out_h, in_h)  # (n, out_h), normalised
    gx = _source_coords(left.to(dev), w.to(dev), out_w, in_w)  # (n, out_w)
    grid = torch.stack((gx[:, None, :].expand(n, out_h, out_w), gy[:, :, None].expand(n, out_h, out_w)), dim=-1)
    xf = x if x.is_floating_point() else x.float()
    return F.grid_sample(xf, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _source_coords(start: torch.Tensor, length: torch.Tensor, out: int, size: int) -> torch.Tensor:
    """grid_sample coordinates of ``out`` samples spread over ``[start, start + length)``."""
    length_f = length.float()[:, None]
    dst = torch.arange(out, device=start.device, dtype=torch.float32)
    # F.interpolate(align_corners=False): src = (dst + 0.5) * in/out - 0.5, clamped to the crop.
    src = ((dst + 0.5) * (length_f / out) - 0.5).clamp(min=0)
    src = torch.minimum(src, length_f - 1) + start.float()[:, None]
    return (2 * src + 1) / size - 1  # pixel -> normalised coordinate (align_corners=False)


def random_resized_crop(
    x: torch.Tensor,
    g: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """torchvision ``RandomResizedCrop(size=input size)``, per sample; returns float32."""
    n, _, h, w = x.shape
    return resized_crop(x, *rrc_params(n, h, w, g, scale, ratio))


# -- cutout ---------------------------------------------------------------------------------------
def cutout(x: torch.Tensor, g: torch.Generator, size: int, *, inplace: bool = False) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square at a random centre per sample, clipped at the border.

    ``inplace`` lets a caller that owns ``x`` skip allocating a copy (half the cost on CPU).
    """
    if size <= 0:
        return x
    n, _, h, w = x.shape
    dev = x.device
    cy, cx = _randint(g, h, n).to(dev), _randint(g, w, n).to(dev)
    y0, x0 = cy - size // 2, cx - size // 2
    rows = torch.arange(h, device=dev)
    cols = torch.arange(w, device=dev)
    in_rows = (rows >= y0[:, None]) & (rows < (y0 + size)[:, None])  # (n, h)
    in_cols = (cols >= x0[:, None]) & (cols < (x0 + size)[:, None])  # (n, w)
    mask = in_rows[:, None, :, None] & in_cols[:, None, None, :]
    return x.masked_fill_(mask, 0) if inplace else x.masked_fill(mask, 0)


# -- composition ----------------------------------------------------------------------------------
def geometric(x: torch.Tensor, g: torch.Generator, cfg: AugmentConfig) -> torch.Tensor:
    """The geometric part of ``cfg``, in torchvision's usual order: resized crop, padded crop, flips.

    Works on raw pixels (uint8 stays uint8 unless the resized crop is on). Cutout is separate
    because it belongs after normalisation (see the module docstring).
    """
    if cfg.random_resized_crop:
        x = random_resized_crop(x, g, cfg.rrc_scale, cfg.rrc_ratio)
    if cfg.crop_padding:
        x = random_crop(x, g, cfg.crop_padding, cfg.crop_mode)
    if cfg.hflip:
        x = random_hflip(x, g)
    if cfg.vflip:
        x = random_vflip(x, g)
    return x
