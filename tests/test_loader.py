"""DeviceLoader and batched augmentation: batching, determinism, and per-sample augmentation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from sweeplab.config.schema import AugmentConfig
from sweeplab.data import DeviceLoader
from sweeplab.data import augment as A
from sweeplab.errors import DataError

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def indexed_images(n: int, size: int = 8) -> torch.Tensor:
    """uint8 images whose pixels encode the sample index, so batches can be traced back."""
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, size, size).contiguous()
    return x


def asymmetric_batch(n: int, h: int = 8, w: int = 8) -> torch.Tensor:
    """n copies of one image that changes under any flip or shift; pixels are 1..255 (never 0)."""
    img = (torch.arange(3 * h * w) * 7 % 254 + 1).to(torch.uint8).view(3, h, w)
    return img.expand(n, 3, h, w).contiguous()


def first_batch(loader: DeviceLoader) -> torch.Tensor:
    return next(iter(loader))[0]


def n_distinct(x: torch.Tensor) -> int:
    return len({t.numpy().tobytes() for t in x})


def denorm(xb: torch.Tensor) -> torch.Tensor:
    """Undo the loader's normalisation back to 0..255 pixel values."""
    return (xb * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)) * 255


# -- batching and normalisation ------------------------------------------------------------------
def test_image_batches_are_normalised_float():
    x = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    y = torch.arange(10)
    loader = DeviceLoader(x, y, batch_size=4, shuffle=False, mean=MEAN, std=STD)
    batches = list(loader)
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    xb, yb = batches[0]
    assert xb.dtype == torch.float32 and xb.shape == (4, 3, 4, 4) and yb.dtype == torch.int64
    expected = (x[:4].float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(xb, expected, atol=1e-5)
    plain = first_batch(DeviceLoader(x, y, batch_size=4, shuffle=False))
    assert torch.allclose(plain, x[:4].float() / 255)


def test_features_and_sequences():
    x = torch.randn(7, 3) * 4 + 2
    y = torch.zeros(7, dtype=torch.int64)
    mean, std = x.mean(0).tolist(), x.std(0).tolist()
    xb = first_batch(DeviceLoader(x, y, batch_size=7, shuffle=False, mean=mean, std=std))
    assert torch.allclose(xb, (x - torch.tensor(mean)) / torch.tensor(std), atol=1e-5)
    assert torch.equal(first_batch(DeviceLoader(x, y, batch_size=7, shuffle=False)), x)
    seq = torch.randint(0, 10, (7, 5))
    sb = first_batch(DeviceLoader(seq, y, batch_size=3, shuffle=True, seed=1))
    assert sb.dtype == torch.int64 and sb.shape == (3, 5)


def test_eval_batches_do_not_alias_into_the_data():
    x = torch.randn(6, 2)
    before = x.clone()
    loader = DeviceLoader(x, torch.zeros(6, dtype=torch.int64), batch_size=2, shuffle=False, mean=[1, 1], std=[2, 2])
    for xb, _ in loader:
        xb.mul_(0)
    assert torch.equal(x, before)


@pytest.mark.parametrize("drop_last, expected", [(False, [3, 3, 3, 1]), (True, [3, 3, 3])])
def test_number_of_batches(drop_last, expected):
    loader = DeviceLoader(indexed_images(10), torch.arange(10), batch_size=3, shuffle=True, drop_last=drop_last)
    assert len(loader) == len(expected)
    assert [len(yb) for _, yb in loader] == expected


@pytest.mark.parametrize("chunk_size", [None, 4, 7])
def test_every_sample_once_per_epoch(chunk_size):
    n = 50
    x, y = indexed_images(n), torch.arange(n)
    loader = DeviceLoader(x, y, batch_size=4, shuffle=True, seed=3, chunk_size=chunk_size)
    for epoch in range(2):
        loader.set_epoch(epoch)
        seen = []
        for xb, yb in loader:
            # x and y stay paired: each image's pixels encode its label
            assert torch.equal((xb[:, 0, 0, 0] * 255).round().long(), yb)
            seen.append(yb)
        assert sorted(torch.cat(seen).tolist()) == list(range(n))


def test_order_depends_on_seed_and_epoch_only():
    n = 64
    x, y = indexed_images(n), torch.arange(n)
    a = DeviceLoader(x, y, batch_size=8, shuffle=True, seed=5)
    orders = []
    for epoch in range(3):
        a.set_epoch(epoch)
        orders.append(torch.cat([yb for _, yb in a]))
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])
    # A fresh loader jumping straight to epoch 2 (a resumed run) sees the same batches.
    b = DeviceLoader(x, y, batch_size=8, shuffle=True, seed=5)
    b.set_epoch(2)
    assert torch.equal(torch.cat([yb for _, yb in b]), orders[2])
    assert torch.equal(torch.cat([yb for _, yb in b]), orders[2])  # iterating again repeats the epoch
    # The order does not depend on how batches are grouped into chunks.
    c = DeviceLoader(x, y, batch_size=8, shuffle=True, seed=5, chunk_size=8)
    c.set_epoch(2)
    assert torch.equal(torch.cat([yb for _, yb in c]), orders[2])
    other = DeviceLoader(x, y, batch_size=8, shuffle=True, seed=6)
    other.set_epoch(2)
    assert not torch.equal(torch.cat([yb for _, yb in other]), orders[2])


def test_unshuffled_order_is_the_data_order():
    loader = DeviceLoader(indexed_images(9), torch.arange(9), batch_size=4, shuffle=False)
    assert torch.cat([yb for _, yb in loader]).tolist() == list(range(9))


def test_augmentation_is_reproducible_per_epoch():
    x, y = asymmetric_batch(32), torch.zeros(32, dtype=torch.int64)
    cfg = AugmentConfig(crop_padding=2, hflip=True, cutout=3)
    a = DeviceLoader(x, y, batch_size=32, shuffle=True, seed=1, augment=cfg)
    b = DeviceLoader(x, y, batch_size=32, shuffle=True, seed=1, augment=cfg)
    b.set_epoch(1)
    b.set_epoch(0)
    assert torch.equal(first_batch(a), first_batch(b))
    b.set_epoch(1)
    assert not torch.equal(first_batch(a), first_batch(b))


@pytest.mark.parametrize("augment", [None, AugmentConfig(crop_padding=2, hflip=True, cutout=3)])
def test_channels_last_batches_hold_the_same_values(augment):
    x = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    y = torch.arange(40)
    kw = dict(batch_size=16, shuffle=True, seed=3, augment=augment, mean=MEAN, std=STD, chunk_size=32)
    plain, nhwc = DeviceLoader(x, y, **kw), DeviceLoader(x, y, channels_last=True, **kw)
    for (xa, ya), (xb, yb) in zip(plain, nhwc, strict=True):
        assert xa.is_contiguous() and not xa.is_contiguous(memory_format=torch.channels_last)
        assert xb.is_contiguous(memory_format=torch.channels_last) and not xb.is_contiguous()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    features = DeviceLoader(torch.randn(8, 5), torch.zeros(8, dtype=torch.int64), batch_size=4, shuffle=False,
                            channels_last=True)
    assert first_batch(features).is_contiguous()  # only images change memory order


# -- augmentations: per-sample parameters ----------------------------------------------------------
def loader_for(cfg: AugmentConfig | None, n: int = 32, seed: int = 0, **kw) -> DeviceLoader:
    x = kw.pop("x", None)
    x = asymmetric_batch(n) if x is None else x
    return DeviceLoader(x, torch.zeros(len(x), dtype=torch.int64), batch_size=len(x), shuffle=False, seed=seed,
                        augment=cfg, mean=MEAN, std=STD, **kw)


def test_no_augmentation_without_config():
    plain = first_batch(loader_for(None))
    assert n_distinct(plain) == 1
    assert torch.equal(first_batch(loader_for(AugmentConfig())), plain)  # everything off = none
    assert torch.allclose(denorm(plain), asymmetric_batch(32).float(), atol=1e-3)


@pytest.mark.parametrize("flag, dim", [("hflip", 3), ("vflip", 2)])
def test_flips_differ_per_sample(flag, dim):
    out = denorm(first_batch(loader_for(AugmentConfig(**{flag: True})))).round()
    img = asymmetric_batch(1).float()
    flipped = torch.tensor([torch.equal(o, img[0].flip(dim - 1)) for o in out])
    kept = torch.tensor([torch.equal(o, img[0]) for o in out])
    assert out.shape == (32, 3, 8, 8)
    assert torch.all(flipped ^ kept)  # each sample is exactly one of the two
    assert 0 < int(flipped.sum()) < 32  # and the batch has both


def shifts(img: torch.Tensor, p: int, mode: str) -> list[torch.Tensor]:
    """Every crop RandomCrop(padding=p) can produce from img (C, H, W)."""
    mode_ = {"zero": "constant", "reflect": "reflect"}[mode]
    padded = F.pad(img[None].float(), (p,) * 4, mode=mode_)[0]
    h, w = img.shape[1:]
    return [padded[:, i : i + h, j : j + w] for i in range(2 * p + 1) for j in range(2 * p + 1)]


@pytest.mark.parametrize("mode", ["zero", "reflect"])
def test_random_crop_offsets_differ_per_sample(mode):
    p = 3
    out = denorm(first_batch(loader_for(AugmentConfig(crop_padding=p, crop_mode=mode), n=64))).round()
    assert out.shape == (64, 3, 8, 8)
    candidates = shifts(asymmetric_batch(1)[0], p, mode)
    matched = [next(k for k, c in enumerate(candidates) if torch.equal(o, c)) for o in out]  # every output is a crop
    assert len(set(matched)) > 10  # and samples got different offsets


def test_reflect_and_zero_padding_differ_at_the_border():
    cfg = dict(crop_padding=3)
    zero = denorm(first_batch(loader_for(AugmentConfig(crop_mode="zero", **cfg), n=64))).round()
    refl = denorm(first_batch(loader_for(AugmentConfig(crop_mode="reflect", **cfg), n=64))).round()
    # Same seed, so same offsets; the images have no zero pixels, so zeros can only come from padding.
    assert (zero == 0).any() and not (refl == 0).any()
    shifted = (zero == 0).flatten(1).any(1)
    assert torch.equal(zero[~shifted], refl[~shifted])  # unshifted crops agree
    assert not torch.equal(zero[shifted], refl[shifted])


def test_reflect_pad_matches_torch():
    x = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    ref = F.pad(x.float(), (2, 2, 2, 2), mode="reflect")
    assert torch.equal(A.pad(x, 2, "reflect").float(), ref)
    assert torch.equal(A.pad(x, 2, "zero").float(), F.pad(x.float(), (2, 2, 2, 2)))


def test_crop_at_matches_slicing():
    x = torch.randint(0, 256, (5, 3, 9, 11), dtype=torch.uint8)
    top, left = torch.tensor([0, 1, 2, 3, 0]), torch.tensor([4, 0, 1, 2, 3])
    out = A.crop_at(x, top, left, 6, 7)
    for k in range(5):
        assert torch.equal(out[k], x[k, :, top[k] : top[k] + 6, left[k] : left[k] + 7])


def test_cutout_positions_differ_per_sample():
    size = 3
    out = first_batch(loader_for(AugmentConfig(cutout=size), n=64))
    assert out.shape == (64, 3, 8, 8)
    holes = (out == 0).all(1)  # (n, h, w): pixels zeroed in every channel (in normalised units)
    assert holes.flatten(1).any(1).all()  # every sample has a hole
    sizes = holes.flatten(1).sum(1)
    assert int(sizes.max()) == size * size and int(sizes.min()) >= 1  # squares, clipped at the border
    assert n_distinct(holes.to(torch.uint8)) > 10
    # outside the hole, the image is untouched
    plain = first_batch(loader_for(None, n=64))
    assert torch.equal(out[~holes[:, None].expand_as(out)], plain[~holes[:, None].expand_as(plain)])


def test_random_resized_crop_differs_per_sample():
    out = first_batch(loader_for(AugmentConfig(random_resized_crop=True), x=asymmetric_batch(32, 32, 32)))
    assert out.shape == (32, 3, 32, 32) and out.dtype == torch.float32
    assert n_distinct(out) >= 30  # (two samples may draw the same box)


def test_resized_crop_identity_and_torchvision_match():
    x = torch.randint(0, 256, (6, 3, 12, 10), dtype=torch.uint8)
    full = A.resized_crop(x, torch.zeros(6, dtype=torch.long), torch.zeros(6, dtype=torch.long),
                          torch.full((6,), 12), torch.full((6,), 10))
    assert torch.allclose(full, x.float(), atol=1e-3)  # a whole-image crop is the image
    g = torch.Generator().manual_seed(0)
    top, left, h, w = A.rrc_params(6, 12, 10, g)
    out = A.resized_crop(x, top, left, h, w)
    for k in range(6):
        ref = TF.resized_crop(x[k].float(), int(top[k]), int(left[k]), int(h[k]), int(w[k]), [12, 10], antialias=False)
        assert torch.allclose(out[k], ref, atol=1e-3), k


def test_rrc_params_respect_scale_ratio_and_bounds():
    g = torch.Generator().manual_seed(0)
    n, H, W = 4000, 32, 32
    top, left, h, w = A.rrc_params(n, H, W, g, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
    assert (h >= 1).all() and (w >= 1).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + h <= H).all() and (left + w <= W).all()
    area = (h * w).float() / (H * W)
    assert area.min() > 0.05 and area.max() <= 1.0  # 0.08 up to rounding of small crops
    assert (w.float() / h.float()).min() > 0.6 and (w.float() / h.float()).max() < 1.7
    assert len(set(zip(top.tolist(), left.tolist(), h.tolist(), w.tolist()))) > n // 4
    # No (area, ratio) draw can fit: torchvision falls back to a centred crop of the nearest ratio.
    top, left, h, w = A.rrc_params(10, 20, 20, g, scale=(1.0, 1.0), ratio=(2.0, 3.0))
    assert (w == 20).all() and (h == 10).all() and (top == 5).all() and (left == 0).all()


def test_augment_functions_are_pure():
    x = asymmetric_batch(8)
    before = x.clone()
    g = torch.Generator().manual_seed(0)
    for fn in (lambda t: A.random_crop(t, g, 2, "reflect"), lambda t: A.random_hflip(t, g),
               lambda t: A.random_vflip(t, g), lambda t: A.cutout(t, g, 3), lambda t: A.random_resized_crop(t, g)):
        out = fn(x)
        assert out.shape == x.shape
    assert torch.equal(x, before)


def test_augmentation_needs_images():
    with pytest.raises(DataError) as err:
        DeviceLoader(torch.randn(4, 2), torch.zeros(4, dtype=torch.int64), batch_size=2, shuffle=True,
                     augment=AugmentConfig(hflip=True))
    assert err.value.path == "data.augment"


def test_reflect_padding_too_large():
    with pytest.raises(DataError) as err:
        loader_for(AugmentConfig(crop_padding=8, crop_mode="reflect"))
    assert err.value.path == "data.augment.crop_padding"
