"""Helpers shared by the tests: the offline CIFAR-10 copy and the real CLI in a subprocess."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CIFAR_CANDIDATES = [
    os.environ.get("SWEEPLAB_CIFAR10", ""),
    # ../shared beside the checkout, or beside any folder above it (a clone made deeper down)
    *(str(up / "shared" / "data" / "cifar10-jpeg.tar.gz") for up in ROOT.parents),
]

#: Ray in tests: loopback only, and token authentication with a token of this test session (Ray's
#: default is a token file in ~/.ray, which a driver joining by --address only uses when told
#: RAY_AUTH_MODE=token). Ray reads these once per process, when it is first imported, so conftest.py
#: sets them for the whole session: any test may import Ray first (the fuzz tests draw
#: `--executor ray`), and every Ray test module then finds the same settings.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN": secrets.token_hex(32)}


def cifar_archive() -> Path | None:
    for c in CIFAR_CANDIDATES:
        if c and Path(c).is_file():
            return Path(c)
    return None


def sweeplab(*args: str, env: dict[str, str] | None = None, timeout: float = 600, cwd: Path | None = None):
    """Run the real `sweeplab` console script in a subprocess."""
    full_env = {**os.environ, **(env or {}), "COLUMNS": "200"}
    exe = Path(sys.executable).parent / "sweeplab"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd)


def fit_recorded(cfg, store, **kwargs):
    """Record the run (as a study or `sweeplab train` does), then train it with ``fit``."""
    from sweeplab.train.loop import fit, record_run

    record_run(store, cfg, kwargs.get("label"))
    return fit(cfg, store, **kwargs)


def default_sigint() -> None:
    """``preexec_fn`` for a child the test interrupts with SIGINT: a shell that started the test
    run in the background leaves SIGINT ignored, a child inherits that, and Python then never
    raises KeyboardInterrupt (as POSIX asks of background jobs). Ctrl-C tests restore the default."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
