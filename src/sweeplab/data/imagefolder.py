"""Image-folder datasets: a directory or tar archive holding ``train/<class>/*`` and ``test/<class>/*``.

Images are decoded once with Pillow, in parallel over the CPU cores, and the decoded arrays are
cached as an uncompressed ``.npz`` so that every later load is a file read (well under a second
for CIFAR-10's 60,000 images).

Layout
    ``train/`` and ``test/`` at the top, or inside one wrapping folder (``cifar10/train/...``).
    Class folders sorted alphabetically give the label order (as torchvision's ImageFolder).
    Files outside ``train/`` and ``test/`` (a README) are ignored, hidden files (``.DS_Store``)
    are skipped; any other file that is not an image is an error, as are images of different sizes.
    Images become RGB, or stay single-channel when every image is greyscale.

Example order
    Within a class, files are sorted by name; the classes are then interleaved (first file of each
    class, second file of each class, ...), so that the first N examples (``train_subset``) cover
    every class evenly instead of being all airplanes.

Cache
    Directory: ``$SWEEPLAB_CACHE``, else ``~/.cache/sweeplab``. File name: a hash of the decoder
    version and of the source's fingerprint.

    - archive: the fingerprint is the archive's sha256 (hashing 20 MB takes ~0.1 s, and it is
      the checksum recorded with the run anyway);
    - directory: the fingerprint is a hash of the sorted relative paths, sizes and modification
      times. Hashing contents would mean reading every file on every load (60,000 opens), which
      is what the cache is there to avoid; any edit, addition or removal changes size or mtime.
      The recorded *checksum* of a directory is still content-based (sha256 of every file's
      sha256 with its relative path, computed while decoding and stored in the cache), so two
      copies of the same folder report the same checksum.

    The cache file is written to a temporary name and renamed into place, so concurrent
    processes never read a half-written file (at worst two of them decode and write the same
    bytes). A cache that cannot be read is ignored and rewritten; one that cannot be written is a
    warning, not an error.
"""

# Size: over 400 lines on purpose: the directory and tar sources, parallel decoding and the cache
# are one pipeline whose invariants (order, digests, sizes) are easiest to check read together.

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import logging
import lzma
import multiprocessing
import os
import tarfile
import tempfile
import warnings
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ._decode import Chunk, decode_chunk
from .stats import channel_stats, sha256_file
from .types import Dataset

log = logging.getLogger(__name__)

CACHE_VERSION = 1
"""Bump when the decoded arrays would change (decoder, order, layout), to invalidate caches."""

_SPLITS = ("train", "test")
_CHUNK_SIZE = 1024  # images per worker task: large enough to amortise pickling, small enough to balance


def cache_dir() -> Path:
    """Where decoded image folders are cached: ``$SWEEPLAB_CACHE``, else ``~/.cache/sweeplab``."""
    env = os.environ.get("SWEEPLAB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sweeplab"


def default_workers() -> int:
    """Decoder processes: one per usable core (the parent's tar reading overlaps with them).

    One, i.e. no pool, inside a daemonic process (a multiprocessing.Pool worker, as an executor
    may use), which is not allowed to start children.
    """
    if multiprocessing.current_process().daemon:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 16))


def load_imagefolder(
    path: str | Path,
    *,
    name: str = "imagefolder",
    key: str | None = "data.path",
    workers: int | None = None,
    chunk_size: int = _CHUNK_SIZE,
    use_cache: bool = True,
) -> Dataset:
    """Load an image-folder directory or tar archive (decoding it at most once per cache).

    ``key`` is the config key or setting that named ``path``, used in error messages.
    """
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise DataError(f"{path} does not exist", path=key)
    source = _DirSource(path, key) if path.is_dir() else _TarSource(path, key)

    cache_file = cache_dir() / f"imagefolder-{_cache_key(source.fingerprint())}.npz"
    arrays = _read_cache(cache_file) if use_cache else None
    if arrays is None:
        arrays = _decode_source(source, workers or default_workers(), chunk_size)
        if use_cache:
            _write_cache(cache_file, arrays)
    return Dataset(
        name=name,
        kind="image",
        x_train=torch.from_numpy(arrays["x_train"]),
        y_train=torch.from_numpy(arrays["y_train"]),
        x_test=torch.from_numpy(arrays["x_test"]),
        y_test=torch.from_numpy(arrays["y_test"]),
        classes=[str(c) for c in arrays["classes"]],
        mean=tuple(float(v) for v in arrays["mean"]),
        std=tuple(float(v) for v in arrays["std"]),
        source=f"image folder {path}",
        checksum=str(arrays["checksum"]),
    )


# -- sources --------------------------------------------------------------------------------------
class _DirSource:
    """A directory: workers read the files themselves (parallel I/O) and hash them on the way."""

    def __init__(self, path: Path, key: str | None):
        self.path, self.key = path, key
        self.root = _find_root(path, key)
        self.files = self._list_files()

    def _list_files(self) -> list[tuple[str, int, int]]:
        """``(relative path, size, mtime_ns)`` of every non-hidden file under train/ and test/.

        scandir rather than os.walk + os.stat + relpath: 3x faster, and this runs on every load.
        """
        files: list[tuple[str, int, int]] = []

        def scan(folder: str, rel: str) -> None:
            with os.scandir(folder) as it:
                entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
            for e in entries:
                if e.is_dir():
                    scan(e.path, f"{rel}{e.name}/")
                else:
                    _check_member(rel + e.name, self.path, self.key)
                    st = e.stat()
                    files.append((rel + e.name, st.st_size, st.st_mtime_ns))

        for split in _SPLITS:
            scan(str(self.root / split), f"{split}/")
        return files

    def fingerprint(self) -> str:
        h = hashlib.sha256(b"dir\n")
        h.update("".join(f"{rel}\t{size}\t{mtime}\n" for rel, size, mtime in self.files).encode())
        return h.hexdigest()

    def jobs(self) -> Iterator[tuple[str, bytes | str]]:
        root = str(self.root)
        for rel, _, _ in self.files:
            yield rel, f"{root}/{rel}"

    want_digests = True

    def checksum(self, names: list[str], digests: list[str] | None) -> str:
        assert digests is not None
        h = hashlib.sha256()
        for rel, digest in sorted(zip(names, digests)):
            h.update(f"{rel}\t{digest}\n".encode())
        return h.hexdigest()


class _TarSource:
    """A tar archive (plain, gzip, bzip2 or xz): members read in the parent, decoded by workers.

    The parent walks the archive once (tarfile's header parsing costs ~1.2 s for CIFAR-10) while
    workers decode the chunks already read, so reading and decoding overlap.
    """

    want_digests = False

    def __init__(self, path: Path, key: str | None):
        self.path, self.key = path, key
        self._sha = sha256_file(path)

    def fingerprint(self) -> str:
        return self._sha

    def checksum(self, names: list[str], digests: list[str] | None) -> str:
        return self._sha

    def jobs(self) -> Iterator[tuple[str, bytes | str]]:
        data = self._decompressed()
        view = memoryview(data)
        prefixes: set[str] = set()
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
                for member in tf:  # headers are parsed lazily, so workers start on the first chunk early
                    if not member.isfile():
                        continue
                    parts = [p for p in member.name.split("/") if p not in ("", ".")]
                    if any(p.startswith(".") for p in parts):
                        continue
                    if parts and parts[0] in _SPLITS:
                        prefix = ""
                    elif len(parts) > 1 and parts[1] in _SPLITS:
                        prefix, parts = parts[0], parts[1:]
                    else:
                        continue  # outside train/ and test/: README, LICENSE, ...
                    prefixes.add(prefix)
                    if len(prefixes) > 1:
                        raise DataError(
                            f"{self.path}: train/ and test/ appear under different folders "
                            f"({', '.join(repr(p or '.') for p in sorted(prefixes))})",
                            path=self.key,
                        )
                    rel = "/".join(parts)
                    _check_member(rel, self.path, self.key)
                    end = member.offset_data + member.size
                    if end > len(data):
                        raise tarfile.ReadError(f"unexpected end of data in {member.name}")
                    yield rel, bytes(view[member.offset_data : end])
        except tarfile.TarError as exc:
            raise DataError(f"{self.path}: not a readable tar archive ({exc})", path=self.key) from exc

    def _decompressed(self) -> bytes:
        """The whole uncompressed archive in memory.

        Slicing members out of one buffer is ~1 s faster for CIFAR-10 than tarfile's streaming
        reads, and the buffer is smaller than the decoded images that are held anyway.
        """
        with open(self.path, "rb") as f:
            raw = f.read()
        opener = next((fn for magic, fn in _COMPRESSED.items() if raw.startswith(magic)), None)
        if opener is None:
            return raw
        try:
            return opener(raw)
        except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
            raise DataError(
                f"{self.path}: corrupt compressed archive ({type(exc).__name__}: {exc})", path=self.key
            ) from exc


_COMPRESSED = {b"\x1f\x8b": gzip.decompress, b"BZh": bz2.decompress, b"\xfd7zXZ\x00": lzma.decompress}


def _check_member(rel: str, archive: Path, key: str | None) -> None:
    """``rel`` is ``<split>/...``; it must sit inside a class folder."""
    parts = rel.split("/")
    if len(parts) < 3:
        raise DataError(f"{archive}: {rel} is not inside a class folder (expected {parts[0]}/<class>/<file>)", path=key)


def _find_root(path: Path, key: str | None) -> Path:
    """The folder holding train/ and test/: ``path`` itself or its single subfolder."""
    if all((path / s).is_dir() for s in _SPLITS):
        return path
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subdirs) == 1 and all((subdirs[0] / s).is_dir() for s in _SPLITS):
        return subdirs[0]
    missing = [f"{s}/" for s in _SPLITS if not (path / s).is_dir()]
    raise DataError(
        f"{path}: no {' or '.join(missing)} folder; an image folder needs train/<class>/* and test/<class>/*",
        path=key,
    )


# -- decoding -------------------------------------------------------------------------------------
def _decode_source(source: _DirSource | _TarSource, workers: int, chunk_size: int) -> dict[str, np.ndarray]:
    """Decode every image of ``source`` and assemble the arrays that are cached."""
    log.info("decoding image folder %s with %d worker(s)", source.path, workers)
    names, images, digests = _decode_all(source, workers, chunk_size)

    label = str(source.path)
    name_arr = np.array(names)
    splits = np.array([n.split("/", 1)[0] for n in names])
    cls_names = np.array([n.split("/", 2)[1] for n in names])
    classes = sorted(set(cls_names[splits == "train"].tolist()))
    for split in _SPLITS:
        if not (splits == split).any():
            raise DataError(f"{label}: no images under {split}/<class>/", path=source.key)
    unknown = sorted(set(cls_names[splits == "test"].tolist()) - set(classes))
    if unknown:
        raise DataError(f"{label}: test/ has classes that train/ lacks: {', '.join(unknown)}", path=source.key)

    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index.get(c, -1) for c in cls_names], dtype=np.int64)
    out: dict[str, np.ndarray] = {}
    for split in _SPLITS:
        idx = _interleaved_order(np.flatnonzero(splits == split), name_arr, labels)
        # NHWC (as decoded) -> NCHW, the layout torch models take.
        out[f"x_{split}"] = np.ascontiguousarray(images[idx].transpose(0, 3, 1, 2))
        out[f"y_{split}"] = labels[idx]
    mean, std = channel_stats(out["x_train"])
    out["classes"] = np.array(classes)
    out["mean"], out["std"] = np.array(mean), np.array(std)
    out["checksum"] = np.array(source.checksum(names, digests))
    out["version"] = np.array(CACHE_VERSION)
    return out


def _interleaved_order(idx: np.ndarray, names: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``idx`` (one split) reordered: by name within each class, classes interleaved round-robin."""
    by_name = idx[np.argsort(names[idx], kind="stable")]
    lab = labels[by_name]
    rank = np.zeros(len(by_name), dtype=np.int64)
    for c in np.unique(lab):
        sel = lab == c
        rank[sel] = np.arange(sel.sum())
    return by_name[np.lexsort((lab, rank))]


def _decode_all(
    source: _DirSource | _TarSource, workers: int, chunk_size: int
) -> tuple[list[str], np.ndarray, list[str] | None]:
    """Run :func:`decode_chunk` over the source's files; a process pool once there are two chunks.

    Small folders (one chunk) are decoded in-process: starting workers would cost more than it saves.
    """
    names: list[str] = []
    results: list[Future[Chunk] | Chunk] = []
    batch: list[tuple[str, bytes | str]] = []
    held: list[tuple[str, bytes | str]] | None = None  # first chunk, kept until we know there is a second
    pool: ProcessPoolExecutor | None = None
    started = False
    want = source.want_digests

    def submit(jobs: list[tuple[str, bytes | str]]) -> None:
        results.append(pool.submit(decode_chunk, jobs, want) if pool else decode_chunk(jobs, want))

    try:
        for job in source.jobs():
            names.append(job[0])
            batch.append(job)
            if len(batch) < chunk_size:
                continue
            if not started:
                if held is None:
                    held, batch = batch, []
                    continue
                pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
                started = True
                submit(held)
                held = None
            submit(batch)
            batch = []
        for rest in (held, batch):
            if rest:
                submit(rest)
        chunks = [r.result() if isinstance(r, Future) else r for r in results]
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    images, digests = _join_chunks(source, names, chunks)
    return names, images, digests if want else None


def _join_chunks(source: _DirSource | _TarSource, names: list[str],
                 chunks: list[Chunk]) -> tuple[np.ndarray, list[str]]:
    """The decoded chunks as one uint8 NHWC array (greyscale widened to the most channels any
    image has) and their digests; a decode error or a size mismatch is a one-line DataError."""
    label = str(source.path)
    for c in chunks:
        if c.error is not None:
            raise DataError(f"{label}: {c.error[0]} {c.error[1]}", path=source.key)
    chunks = [c for c in chunks if c.images is not None and len(c.images)]
    if not chunks:
        raise DataError(f"{label}: no images found under train/ or test/", path=source.key)
    # Sizes were checked within each chunk; check them across chunks, naming a file of each size.
    starts = np.cumsum([0] + [len(c.images) for c in chunks])
    size0 = chunks[0].images.shape[1:3]
    for c, s in zip(chunks, starts):
        if c.images.shape[1:3] != size0:
            raise DataError(
                f"{label}: {names[s]} is {c.images.shape[2]}x{c.images.shape[1]} but {names[0]} is "
                f"{size0[1]}x{size0[0]}; all images must have the same size",
                path=source.key,
            )
    channels = max(c.images.shape[3] for c in chunks)
    images = np.concatenate(
        [c.images if c.images.shape[3] == channels else np.repeat(c.images, channels, axis=3) for c in chunks]
    )
    return images, [d for c in chunks for d in (c.digests or [])]


# -- cache ----------------------------------------------------------------------------------------
def _cache_key(fingerprint: str) -> str:
    return hashlib.sha256(f"imagefolder-v{CACHE_VERSION}:{fingerprint}".encode()).hexdigest()[:32]


_CACHE_KEYS = ("x_train", "y_train", "x_test", "y_test", "classes", "mean", "std", "checksum", "version")


def _read_cache(file: Path) -> dict[str, np.ndarray] | None:
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in _CACHE_KEYS}
        if int(arrays["version"]) != CACHE_VERSION:
            return None
        return arrays
    except Exception as exc:  # noqa: BLE001 - any unreadable cache is a miss, never a failure
        log.warning("ignoring unreadable cache file %s (%s)", file, exc)
        return None


def _write_cache(file: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = None
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{file.stem}.", suffix=".tmp", dir=file.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a shared cache dir should stay shareable
        os.replace(tmp, file)  # atomic: readers see the old file or the whole new one
        tmp = None
    except OSError as exc:
        warnings.warn(f"could not write the image cache {file}: {exc}; the next load will decode again", stacklevel=3)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
