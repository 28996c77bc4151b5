"""Dataset loaders, registry, subsets and validation split, on real (small) data: no mocks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sweeplab.config.schema import DataConfig
from sweeplab.data import Dataset, list_datasets, load_dataset, normalization
from sweeplab.data import imagefolder
from sweeplab.errors import DataError

@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Each test gets its own cache and no data-location settings from the caller's shell."""
    monkeypatch.setenv("SWEEPLAB_CACHE", str(tmp_path / "cache"))
    for var in ("SWEEPLAB_CIFAR10", "SWEEPLAB_DATA", "SWEEPLAB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)


def rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x}


# -- scikit-learn -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["moons", "circles", "blobs"])
def test_generated_features(name):
    cfg = DataConfig(dataset=name, n_samples=500, test_fraction=0.2, random_state=3)
    ds = load_dataset(cfg)
    assert ds.kind == "features"
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.x_train.shape == (400, 2) and ds.x_test.shape == (100, 2)
    assert ds.input_shape == (2,)
    assert rows(ds.x_train).isdisjoint(rows(ds.x_test))
    # stratified: class shares equal in train and test
    train_share = torch.bincount(ds.y_train) / len(ds.y_train)
    test_share = torch.bincount(ds.y_test) / len(ds.y_test)
    assert torch.allclose(train_share, test_share, atol=0.02)
    # standardisation stats come from the training split
    assert np.allclose(ds.mean, ds.x_train.double().mean(0).numpy(), atol=1e-6)
    assert np.allclose(ds.std, ds.x_train.double().std(0, unbiased=False).numpy(), atol=1e-6)
    again = load_dataset(cfg)
    assert torch.equal(again.x_train, ds.x_train) and torch.equal(again.y_test, ds.y_test)
    assert again.checksum == ds.checksum
    other = load_dataset(cfg.model_copy(update={"random_state": 4}))
    assert not torch.equal(other.x_train, ds.x_train) and other.checksum != ds.checksum


def test_blobs_options():
    ds = load_dataset(DataConfig(dataset="blobs", n_features=5, centers=4, n_samples=200))
    assert ds.input_shape == (5,) and ds.num_classes == 4
    assert set(ds.y_train.tolist()) == {0, 1, 2, 3}


def test_digits_are_uint8_images():
    ds = load_dataset(DataConfig(dataset="digits", test_fraction=0.25, random_state=1))
    assert ds.kind == "image" and ds.x_train.dtype == torch.uint8
    assert ds.input_shape == (1, 8, 8) and ds.num_classes == 10
    assert len(ds.y_train) + len(ds.y_test) == 1797
    assert len(ds.y_test) == 450  # ceil(0.25 * 1797), as scikit-learn rounds
    assert int(ds.x_train.max()) == 255 and int(ds.x_train.min()) == 0  # 16 -> 255
    # values are x * 255 / 16 rounded: only 17 levels
    assert set(torch.unique(ds.x_train).tolist()) <= {round(v * 255 / 16) for v in range(17)}
    assert ds.source == "sklearn.datasets.load_digits"
    assert len(ds.mean) == 1 and 0 < ds.mean[0] < 1
    assert torch.equal(load_dataset(DataConfig(dataset="digits", test_fraction=0.25, random_state=1)).x_test, ds.x_test)


# -- registry, subsets, validation split --------------------------------------------------------
def test_registry_lists_every_dataset():
    names = list_datasets()
    for n in ("cifar10", "cifar100", "mnist", "fashion_mnist", "imagefolder", "npz", "digits",
              "moons", "circles", "blobs", "palindrome"):
        assert n in names and names[n]


def test_unknown_dataset_lists_available():
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(dataset="imagenet"))
    assert err.value.path == "data.dataset"
    assert "moons" in str(err.value) and "cifar10" in str(err.value)


def test_subsets_take_the_first_examples():
    full = load_dataset(DataConfig(dataset="moons"))
    sub = load_dataset(DataConfig(dataset="moons", train_subset=50, test_subset=20))
    assert torch.equal(sub.x_train, full.x_train[:50]) and torch.equal(sub.y_test, full.y_test[:20])
    # More than the dataset has (a quick pass's train_subset=1000 on a toy set): all of it, said so.
    clamped = load_dataset(DataConfig(dataset="moons", train_subset=5000))
    assert torch.equal(clamped.x_train, full.x_train) and torch.equal(clamped.y_test, full.y_test)
    assert clamped.notes == ("data.train_subset=5000: moons has 800 train examples, all are used",)
    assert sub.notes == ()


def test_validation_split_is_disjoint_sized_and_seeded():
    full = load_dataset(DataConfig(dataset="moons", n_samples=1000))
    ds = load_dataset(DataConfig(dataset="moons", n_samples=1000, val_size=150, split_seed=7))
    assert len(ds.y_val) == 150 and len(ds.y_train) == 650
    assert rows(ds.x_val).isdisjoint(rows(ds.x_train))
    assert rows(ds.x_val) | rows(ds.x_train) == rows(full.x_train)
    assert torch.equal(ds.x_test, full.x_test)  # the test set is untouched
    same = load_dataset(DataConfig(dataset="moons", n_samples=1000, val_size=150, split_seed=7))
    assert torch.equal(same.x_val, ds.x_val)
    other = load_dataset(DataConfig(dataset="moons", n_samples=1000, val_size=150, split_seed=8))
    assert rows(other.x_val) != rows(ds.x_val)
    frac = load_dataset(DataConfig(dataset="moons", n_samples=1000, val_fraction=0.25))
    assert len(frac.y_val) == 200 and len(frac.y_train) == 600
    assert ds.describe()["val_size"] == 150


def test_validation_split_after_subset():
    ds = load_dataset(DataConfig(dataset="digits", train_subset=100, val_size=10))
    assert len(ds.y_train) == 90 and len(ds.y_val) == 10


@pytest.mark.parametrize(
    "kwargs, key",
    [({"val_size": 800}, "data.val_size"), ({"val_size": 5000}, "data.val_size"),
     ({"val_fraction": 0.0001}, "data.val_fraction")],
)
def test_validation_split_too_large_or_empty(kwargs, key):
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(dataset="moons", **kwargs))
    assert err.value.path == key
    assert "800 training examples" in str(err.value), str(err.value)


def test_normalization_choice():
    ds = load_dataset(DataConfig(dataset="digits"))
    assert normalization(ds, DataConfig(dataset="digits")) == (ds.mean, ds.std)
    assert normalization(ds, DataConfig(dataset="digits", normalize=False)) == (None, None)
    assert normalization(ds, DataConfig(dataset="digits", mean=[0.5], std=[0.25])) == ((0.5,), (0.25,))
    with pytest.raises(DataError) as err:
        normalization(ds, DataConfig(dataset="digits", mean=[0.5, 0.5, 0.5]))
    assert err.value.path == "data.mean"
    seq = load_dataset(DataConfig(dataset="palindrome", train_size=10, test_size=10))
    assert normalization(seq, DataConfig(dataset="palindrome")) == (None, None)


def test_describe_is_json():
    ds = load_dataset(DataConfig(dataset="blobs"))
    d = json.loads(json.dumps(ds.describe()))
    assert d["checksum"] == ds.checksum and d["train_size"] == 800 and d["input_shape"] == [2]


# -- palindrome ----------------------------------------------------------------------------------
@pytest.mark.parametrize("length", [2, 7, 10])
def test_palindrome(length):
    cfg = DataConfig(dataset="palindrome", seq_length=length, train_size=300, test_size=50, random_state=5)
    ds = load_dataset(cfg)
    assert ds.kind == "sequence" and ds.vocab_size == 10 and ds.classes == [str(d) for d in range(10)]
    assert ds.x_train.shape == (300, length - 1) and ds.x_test.shape == (50, length - 1)
    assert ds.x_train.dtype == torch.int64 and ds.y_train.dtype == torch.int64
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        full = torch.cat([x, y[:, None]], dim=1)
        assert torch.equal(full, full.flip(1))  # the whole sequence is a palindrome
        assert torch.equal(y, x[:, 0])
        assert 0 <= int(full.min()) and int(full.max()) <= 9
    again = load_dataset(cfg)
    assert torch.equal(again.x_train, ds.x_train) and torch.equal(again.x_test, ds.x_test)
    assert not torch.equal(ds.x_train[:50], ds.x_test)  # separate streams for train and test
    other = load_dataset(cfg.model_copy(update={"random_state": 6}))
    assert not torch.equal(other.x_train, ds.x_train)


# -- npz -----------------------------------------------------------------------------------------
def test_npz_images_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (20, 6, 5, 3), dtype=np.uint8)  # NHWC
    x_test = rng.integers(0, 256, (8, 6, 5, 3), dtype=np.uint8)
    y_train = rng.integers(0, 3, (20, 1))  # Keras stores (N, 1)
    y_test = rng.integers(0, 3, (8,))
    f = tmp_path / "mine.npz"
    np.savez(f, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, classes=np.array(["a", "b", "c"]))
    ds = load_dataset(DataConfig(dataset="npz", path=str(f)))
    assert ds.kind == "image" and ds.input_shape == (3, 6, 5) and ds.classes == ["a", "b", "c"]
    assert torch.equal(ds.x_train, torch.from_numpy(x_train).permute(0, 3, 1, 2))
    assert torch.equal(ds.y_train, torch.from_numpy(y_train[:, 0]))
    assert ds.checksum == hashlib.sha256(f.read_bytes()).hexdigest()
    assert np.allclose(ds.mean, x_train.reshape(-1, 3).mean(0) / 255)


def test_npz_greyscale_and_features(tmp_path):
    grey = tmp_path / "grey.npz"
    np.savez(grey, x_train=np.zeros((4, 7, 7), np.uint8), y_train=np.arange(4), x_test=np.ones((2, 7, 7), np.uint8),
             y_test=np.array([0, 3]))
    ds = load_dataset(DataConfig(dataset="npz", path=str(grey)))
    assert ds.input_shape == (1, 7, 7) and ds.num_classes == 4
    feats = tmp_path / "feats.npz"
    np.savez(feats, x_train=np.random.rand(10, 4), y_train=np.arange(10) % 2, x_test=np.random.rand(3, 4),
             y_test=np.array([0, 1, 1]))
    ds = load_dataset(DataConfig(dataset="npz", path=str(feats)))
    assert ds.kind == "features" and ds.x_train.dtype == torch.float32 and ds.input_shape == (4,)


def test_npz_missing_keys(tmp_path):
    f = tmp_path / "bad.npz"
    np.savez(f, x_train=np.zeros((2, 3), np.float32), y_train=np.zeros(2, np.int64))
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(dataset="npz", path=str(f)))
    assert err.value.path == "data.path"
    assert "x_test" in str(err.value) and "y_test" in str(err.value)


def test_npz_needs_a_path():
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(dataset="npz"))
    assert err.value.path == "data.path"


# -- image folders -------------------------------------------------------------------------------
CLASSES = ["cat", "dog", "owl"]  # alphabetical = label order


def make_folder(root: Path, n_train: int = 3, n_test: int = 2, size=(6, 5), mode="RGB") -> dict[str, np.ndarray]:
    """train/<class>/iNN.png and test/<class>/iNN.png with distinct, known pixels (PNG: lossless)."""
    rng = np.random.default_rng(1)
    pixels = {}
    for split, n in (("train", n_train), ("test", n_test)):
        for cls in CLASSES:
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
                arr = rng.integers(0, 256, shape, dtype=np.uint8)
                rel = f"{split}/{cls}/i{i:02d}.png"
                Image.fromarray(arr, mode).save(root / rel)
                pixels[rel] = arr
    return pixels


def make_tar(src: Path, dest: Path, wrap: str | None = "mydata") -> Path:
    with tarfile.open(dest, "w:gz") as tf:
        tf.add(src, arcname=wrap or ".")
    return dest


def as_chw(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr).permute(2, 0, 1) if arr.ndim == 3 else torch.from_numpy(arr)[None]


def test_imagefolder_directory(tmp_path):
    pixels = make_folder(tmp_path / "imgs")
    ds = load_dataset(DataConfig(dataset="imagefolder", path=str(tmp_path / "imgs")))
    assert ds.kind == "image" and ds.classes == CLASSES
    assert ds.x_train.shape == (9, 3, 5, 6) and ds.x_test.shape == (6, 3, 5, 6)
    # classes interleaved, files by name within a class
    assert ds.y_train.tolist() == [0, 1, 2] * 3
    expected = [f"train/{c}/i{i:02d}.png" for i in range(3) for c in CLASSES]
    for k, rel in enumerate(expected):
        assert torch.equal(ds.x_train[k], as_chw(pixels[rel])), rel
    train_px = np.stack([pixels[r] for r in expected])
    assert np.allclose(ds.mean, train_px.reshape(-1, 3).mean(0) / 255)
    assert np.allclose(ds.std, train_px.reshape(-1, 3).std(0) / 255)
    assert str(tmp_path / "imgs") in ds.source
    # the checksum is content-based: a copy (new mtimes) reports the same one
    shutil.copytree(tmp_path / "imgs", tmp_path / "copy")
    assert load_dataset(DataConfig(dataset="imagefolder", path=str(tmp_path / "copy"))).checksum == ds.checksum


def test_imagefolder_archive_matches_directory(tmp_path):
    make_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "README.txt").write_text("ignored: outside train/ and test/")
    archive = make_tar(tmp_path / "imgs", tmp_path / "imgs.tar.gz")
    from_dir = load_dataset(DataConfig(dataset="imagefolder", path=str(tmp_path / "imgs")))
    from_tar = load_dataset(DataConfig(dataset="imagefolder", path=str(archive)))
    for k in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(from_dir, k), getattr(from_tar, k)), k
    assert from_tar.checksum == hashlib.sha256(archive.read_bytes()).hexdigest()
    plain = make_tar(tmp_path / "imgs", tmp_path / "flat.tar", wrap=None)  # no wrapping folder, no gzip
    assert torch.equal(load_dataset(DataConfig(dataset="imagefolder", path=str(plain))).x_train, from_dir.x_train)


@pytest.mark.parametrize("kind", ["dir", "tar"])
def test_imagefolder_cache_hit_skips_decoding(tmp_path, monkeypatch, kind):
    make_folder(tmp_path / "imgs")
    src = tmp_path / "imgs" if kind == "dir" else make_tar(tmp_path / "imgs", tmp_path / "imgs.tar.gz")
    cfg = DataConfig(dataset="imagefolder", path=str(src))
    first = load_dataset(cfg)
    cached = list((tmp_path / "cache").glob("imagefolder-*.npz"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite a cache hit")

    monkeypatch.setattr(imagefolder, "_decode_source", no_decoding)
    second = load_dataset(cfg)
    assert cached[0].stat().st_mtime_ns == mtime
    assert torch.equal(second.x_train, first.x_train) and second.mean == first.mean
    assert second.checksum == first.checksum and second.classes == first.classes


def test_imagefolder_cache_follows_changes(tmp_path):
    make_folder(tmp_path / "imgs")
    cfg = DataConfig(dataset="imagefolder", path=str(tmp_path / "imgs"))
    first = load_dataset(cfg)
    Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(tmp_path / "imgs/train/cat/i00.png")
    second = load_dataset(cfg)
    assert int(second.x_train[0].sum()) == 0 and not torch.equal(first.x_train, second.x_train)
    assert second.checksum != first.checksum
    assert len(list((tmp_path / "cache").glob("imagefolder-*.npz"))) == 2


def test_imagefolder_parallel_decode_matches_serial(tmp_path):
    make_folder(tmp_path / "imgs", n_train=4, n_test=3)
    serial = imagefolder.load_imagefolder(tmp_path / "imgs", use_cache=False, workers=1)
    parallel = imagefolder.load_imagefolder(tmp_path / "imgs", use_cache=False, workers=2, chunk_size=4)
    assert torch.equal(serial.x_train, parallel.x_train) and torch.equal(serial.y_test, parallel.y_test)
    assert serial.checksum == parallel.checksum


def test_imagefolder_greyscale_stays_one_channel(tmp_path):
    make_folder(tmp_path / "imgs", mode="L")
    ds = load_dataset(DataConfig(dataset="imagefolder", path=str(tmp_path / "imgs")))
    assert ds.input_shape == (1, 5, 6) and len(ds.mean) == 1


@pytest.mark.parametrize("content", [b"definitely not a tar archive" * 10, "truncated"])
def test_imagefolder_corrupt_archive(tmp_path, content):
    bad = tmp_path / "bad.tar.gz"
    if content == "truncated":
        make_folder(tmp_path / "imgs")
        whole = make_tar(tmp_path / "imgs", tmp_path / "whole.tar.gz").read_bytes()
        bad.write_bytes(whole[: len(whole) // 2])
    else:
        bad.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(dataset="imagefolder", path=str(bad)))
    assert err.value.path == "data.path" and str(bad) in str(err.value)


def test_imagefolder_missing_split(tmp_path):
    make_folder(tmp_path / "imgs")
    shutil.rmtree(tmp_path / "imgs" / "test")
    with pytest.raises(DataError, match="no test/ folder") as err:
        load_dataset(DataConfig(dataset="imagefolder", path=str(tmp_path / "imgs")))
    assert str(tmp_path / "imgs") in str(err.value)
    archive = make_tar(tmp_path / "imgs", tmp_path / "imgs.tar.gz")
    with pytest.raises(DataError, match="no images under test/"):
        load_dataset(DataConfig(dataset="imagefolder", path=str(archive)))


def test_imagefolder_mixed_sizes(tmp_path):
    make_folder(tmp_path / "imgs")
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(tmp_path / "imgs/test/owl/big.png")
    with pytest.raises(DataError, match="big.png is 9x9 but .* is 6x5"):
        load_dataset(DataConfig(dataset="imagefolder", path=str(tmp_path / "imgs")))


def test_imagefolder_non_image_file(tmp_path):
    make_folder(tmp_path / "imgs")
    (tmp_path / "imgs/train/dog/notes.txt").write_text("not an image")
    (tmp_path / "imgs/train/dog/.DS_Store").write_bytes(b"\0\1")  # hidden files are skipped
    with pytest.raises(DataError, match=r"train/dog/notes.txt is not an image") as err:
        load_dataset(DataConfig(dataset="imagefolder", path=str(tmp_path / "imgs")))
    assert err.value.path == "data.path"


def test_imagefolder_file_outside_class_folder(tmp_path):
    make_folder(tmp_path / "imgs")
    Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(tmp_path / "imgs/train/stray.png")
    with pytest.raises(DataError, match="not inside a class folder"):
        load_dataset(DataConfig(dataset="imagefolder", path=str(tmp_path / "imgs")))


def test_imagefolder_missing_path(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(dataset="imagefolder", path=str(tmp_path / "nope")))
    assert err.value.path == "data.path" and "nope" in str(err.value)


# -- torchvision datasets and CIFAR-10 resolution ------------------------------------------------
@pytest.mark.parametrize("name, folder", [("mnist", "MNIST/raw"), ("cifar100", "cifar-100-python")])
def test_torchvision_dataset_missing_offline(tmp_path, monkeypatch, name, folder):
    monkeypatch.setenv("SWEEPLAB_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(dataset=name), data_dir=tmp_path)
    msg = str(err.value)
    assert err.value.path == "data.dataset"
    assert str((tmp_path / folder).resolve()) in msg and "SWEEPLAB_DATA" in msg


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEPLAB_OFFLINE", "1")
    monkeypatch.setenv("SWEEPLAB_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(DataError, match="elsewhere"):
        load_dataset(DataConfig(dataset="fashion_mnist"))


def test_cifar10_alias_in_data_dir_comes_first(tmp_path, monkeypatch):
    """A cifar10-jpeg folder in the data dir is found before the shared copy, and checked."""
    monkeypatch.setenv("SWEEPLAB_OFFLINE", "1")
    make_folder(tmp_path / "cifar10-jpeg")  # 3 classes of 6x5: not CIFAR-10
    with pytest.raises(DataError, match="cifar10-jpeg holds 3 classes"):
        load_dataset(DataConfig(dataset="cifar10"), data_dir=tmp_path)


def test_cifar10_env_pointing_nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEPLAB_CIFAR10", str(tmp_path / "missing.tar.gz"))
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(dataset="cifar10"), data_dir=tmp_path)
    assert err.value.path == "SWEEPLAB_CIFAR10" and "missing.tar.gz" in str(err.value)


@pytest.mark.cifar
def test_shared_cifar10_copy(cifar10_env, monkeypatch, tmp_path):
    """Via conftest's session fixture: the shared copy and the shared decode cache (decoded at most
    once per session, ~10 s; later sessions read the cache in ~0.2 s)."""
    for var, value in cifar10_env.items():
        monkeypatch.setenv(var, value)
    archive = Path(cifar10_env["SWEEPLAB_CIFAR10"])
    ds = load_dataset(DataConfig(dataset="cifar10"), data_dir=tmp_path)
    assert ds.name == "cifar10" and str(archive.resolve()) in ds.source
    assert ds.checksum == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert ds.x_train.shape == (50000, 3, 32, 32) and ds.x_test.shape == (10000, 3, 32, 32)
    assert ds.x_train.dtype == torch.uint8
    assert ds.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert torch.bincount(ds.y_train).tolist() == [5000] * 10
    assert np.allclose(ds.mean, (0.4913, 0.4821, 0.4465), atol=0.01)
    assert np.allclose(ds.std, (0.2452, 0.2428, 0.2606), atol=0.01)
    # interleaved classes: a small subset still covers every class evenly
    sub = load_dataset(DataConfig(dataset="cifar10", train_subset=100, val_size=10), data_dir=tmp_path)
    assert torch.bincount(sub.y_train, minlength=10).sum() == 90
    assert torch.bincount(torch.cat([sub.y_train, sub.y_val])).tolist() == [10] * 10


def test_dataset_rejects_wrong_dtypes():
    with pytest.raises(ValueError, match="uint8"):
        Dataset(name="x", kind="image", x_train=torch.zeros(2, 1, 2, 2), y_train=torch.zeros(2, dtype=torch.int64),
                x_test=torch.zeros(1, 1, 2, 2), y_test=torch.zeros(1, dtype=torch.int64), classes=["a"])
    assert os.environ.get("SWEEPLAB_CACHE")  # the autouse fixture isolates the cache
