"""Writing what a command produces (report, export, checkpoint) so that failures are one line.

A target that is a directory, a file where a folder should be, a full disk (``/dev/full``) or a
stdout that cannot be written becomes a :class:`ConfigError` naming the option and the value,
never a traceback. Regular files are written through a temporary file and a rename, so an
existing file is either replaced whole or left as it was.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from sweeplab.errors import ConfigError


def reason(err: OSError) -> str:
    """``No space left on device: '/dev/full'``: an OS error in a few words."""
    text = err.strerror or str(err) or type(err).__name__
    return f"{text}: {err.filename!r}" if err.filename else text


def output_error(option: str, target: Path | str, err: OSError, allowed: str) -> ConfigError:
    return ConfigError(f"cannot write {str(target)!r} ({reason(err)}); {allowed}", path=option)


def write_output(path: Path, data: bytes, option: str) -> None:
    """Write ``data`` to ``path`` for the command-line option ``option`` (``-o``)."""
    path = Path(path)
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "Is a directory", str(path))
        if path.is_symlink():
            path = Path(os.path.realpath(path))
        if path.exists() and not path.is_file():  # a device or a pipe: written in place
            with open(path, "wb") as f:
                f.write(data)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as err:
        raise output_error(option, path, err, "give the path of a file that can be written") from None


def write_stdout(text: str, what: str) -> None:
    """Write ``text`` to stdout; a closed or failing stdout is a one-line error."""
    if sys.stdout is None:
        raise ConfigError(f"stdout is closed; write the {what} to a file with -o FILE", path="stdout")
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError) as err:
        _discard_stdout()
        why = reason(err) if isinstance(err, OSError) else str(err)
        raise ConfigError(f"cannot write the {what} ({why}); write it to a file with -o FILE",
                          path="stdout") from None


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def write_report_to(db: Path, study: str, target: Path, option: str, formats=None,
                    version: int | None = None, **options) -> dict[str, Path]:
    """``write_report`` into ``target``; an OS error names ``option`` (``--dir``, ``--out``)."""
    from sweeplab.report import FORMATS, write_report

    try:
        return write_report(db, study, target, formats=formats or FORMATS, version=version, **options)
    except OSError as err:
        raise output_error(option, target, err, "give a folder that can be written") from None
