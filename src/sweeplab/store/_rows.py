"""The store's constants, SQL column lists and conversions between Python values and rows."""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from sweeplab.errors import StoreError
from sweeplab.store.records import EPOCH_METRIC_COLUMNS, RUN_STATUSES, JsonLike, RunRecord


#: Where the CLI keeps the store unless told otherwise (relative to the working directory).
DEFAULT_DB_PATH = Path("runs") / "sweeplab.db"

CHECKPOINT_KINDS = ("last", "best")

# Columns a caller may set through update_run / set_status(**fields). Identity (id, config_json,
# seed), status and timestamps have their own methods so they cannot be clobbered by accident.
_UPDATABLE_RUN_FIELDS = frozenset(
    {
        "label",
        "data_source",
        "data_checksum",
        "env_json",
        "device",
        "params",
        "flops",
        "batch_size_used",
        "epochs_planned",
        "worker",
        "wall_time_s",
    }
)
_RUN_COLUMNS = tuple(f.name for f in fields(RunRecord) if f.name not in ("epochs_done", "continued_epochs"))
_RUN_SELECT = (
    "SELECT "
    + ", ".join(f"r.{c}" for c in _RUN_COLUMNS)
    + ", COALESCE((SELECT MAX(e.epoch) FROM epochs e WHERE e.run_id = r.id), 0) AS epochs_done"
    + ", (SELECT MAX(e.epoch) FROM epochs e WHERE e.run_id = r.continued_from) AS continued_epochs"
    + " FROM runs r"
)
_EPOCH_COLUMNS = ("run_id", "epoch", *EPOCH_METRIC_COLUMNS, "extra_json", "finished_at")
# Keys the store itself puts in epoch dicts (all_epochs adds the link's and run's fields).
_RESERVED_METRIC_KEYS = frozenset(
    {"run_id", "epoch", "extra_json", "finished_at", "study", "arm", "label", "seed", "status"}
)

# Connections inherited by a forked child. Finalising one there could make SQLite believe it is
# the last connection and checkpoint or delete the parent's WAL, so they are kept alive instead.
_INHERITED_CONNECTIONS: list[sqlite3.Connection] = []

_T = TypeVar("_T")


class EpochConflictError(StoreError):
    """An epoch was committed twice or out of order: usually two processes training one run."""


def default_worker_id() -> str:
    """``host:pid`` of this process: the ``worker`` recorded on the runs it claims."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _same_run_part(config_json: str) -> Any:
    """A config as compared by ``upsert_run``: the user's code files by name only. A run's id
    hashes the part of each file it uses, so a text edited elsewhere (another network in the
    same file) is still the same run; the store keeps the text the run was trained with."""
    config = json.loads(config_json)
    if isinstance(config, dict) and isinstance(config.get("code"), dict):
        config["code"] = sorted(config["code"])
    return config



# ---------------------------------------------------------------------- helpers


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _marks(items: Sequence[Any]) -> str:
    return ", ".join("?" * len(items))


def _is_busy(err: sqlite3.OperationalError) -> bool:
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(err) or "busy" in str(err)


def _user_facing(err: sqlite3.Error) -> str | None:
    """A one-line explanation for SQLite errors caused by the environment, not by our code."""
    code = getattr(err, "sqlite_errorcode", None)
    if code is None:
        return None
    explanations = {
        sqlite3.SQLITE_FULL: "the disk holding the run store is full",
        sqlite3.SQLITE_READONLY: "the run store file or its folder is not writable",
        sqlite3.SQLITE_IOERR: "I/O error on the run store",
        sqlite3.SQLITE_CORRUPT: "the run store file is corrupt",
        sqlite3.SQLITE_NOTADB: "not a SQLite database",
    }
    text = explanations.get(code & 0xFF)
    return f"{text} ({err})" if text else None


def _check_run_id(run_id: str) -> None:
    if not isinstance(run_id, str) or not run_id.strip():
        raise ValueError(f"a run id must be a non-empty string, not {run_id!r}")


def _check_status(status: str) -> None:
    if status not in RUN_STATUSES:
        raise ValueError(
            f"unknown run status {status!r}; expected one of {', '.join(RUN_STATUSES)}"
        )


def _check_epoch(epoch: int) -> int:
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise ValueError(f"epoch must be an int >= 1 (epochs are numbered from 1), not {epoch!r}")
    return epoch


def _wall_time(seconds: float) -> float:
    seconds = float(seconds)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"wall time must be a finite number of seconds >= 0, not {seconds!r}")
    return seconds


def _json_default(obj: Any) -> Any:
    # numpy arrays/scalars and torch tensors, without importing either.
    for method in ("tolist", "item"):
        convert = getattr(obj, method, None)
        if callable(convert):
            return convert()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _to_json(value: JsonLike, what: str) -> str:
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError as err:
            raise ValueError(f"{what} is not valid JSON: {err}") from None
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a JSON string or a mapping, not {type(value).__name__}")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _run_field_values(values: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(values) - _UPDATABLE_RUN_FIELDS)
    if unknown:
        raise TypeError(
            f"cannot set run field(s) {', '.join(unknown)}; "
            f"settable: {', '.join(sorted(_UPDATABLE_RUN_FIELDS))}"
        )
    out = dict(values)
    if out.get("env_json") is not None:
        out["env_json"] = _to_json(out["env_json"], "env_json")
    if "wall_time_s" in out:
        out["wall_time_s"] = _wall_time(out["wall_time_s"])
    return out


def _as_number(key: str, value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) and callable(getattr(value, "item", None)):
        value = value.item()  # 0-d numpy / torch values
    if isinstance(value, (int, float)):
        return float(value)
    raise TypeError(f"metric {key!r} must be a number or None, not {type(value).__name__}")


def _split_metrics(metrics: Mapping[str, Any]) -> tuple[list[float | None], str | None]:
    """Route known metrics to their columns (``EPOCH_METRIC_COLUMNS`` order), the rest to JSON."""
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a mapping, not {type(metrics).__name__}")
    columns: dict[str, float | None] = dict.fromkeys(EPOCH_METRIC_COLUMNS)
    extra: dict[str, Any] = {}
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise TypeError(f"metric names must be strings, not {key!r}")
        if key in _RESERVED_METRIC_KEYS:
            raise ValueError(f"{key!r} is set by the store and cannot be a metric name")
        if key in columns:
            number = _as_number(key, value)
            if number is not None and math.isnan(number):
                # SQLite stores NaN as NULL; keeping it in extra_json makes a diverged loss read
                # back as nan rather than as "not measured".
                extra[key] = number
                number = None
            columns[key] = number
        else:
            extra[key] = value
    try:
        extra_json = json.dumps(extra, default=_json_default) if extra else None
    except (TypeError, ValueError) as err:
        raise TypeError(f"extra metrics are not JSON serialisable: {err}") from None
    return list(columns.values()), extra_json


def _epoch_dict(row: sqlite3.Row) -> dict[str, Any]:
    record = {c: row[c] for c in _EPOCH_COLUMNS if c != "extra_json"}
    if row["extra_json"]:
        record.update(json.loads(row["extra_json"]))
    return record


def _run_record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(**{key: row[key] for key in row.keys()})


def _max_epoch(conn: sqlite3.Connection, run_id: str) -> int:
    row = conn.execute("SELECT MAX(epoch) FROM epochs WHERE run_id = ?", (run_id,)).fetchone()
    return row[0] or 0


def _staleness(
    worker: str | None,
    heartbeat_at: str | None,
    host: str,
    now: datetime,
    stale_after_s: float | None,
) -> str | None:
    """Why a running run's worker is presumed dead, or None if it may be alive."""
    if worker:
        worker_host, _, pid = worker.rpartition(":")
        if worker_host == host and pid.isdigit() and not _process_alive(int(pid)):
            return f"worker {worker} died"
    if stale_after_s is not None:
        if heartbeat_at is None:
            return "worker never reported"
        age = (now - datetime.fromisoformat(heartbeat_at)).total_seconds()
        if age > stale_after_s:
            return f"worker {worker or '?'} silent for {age:.0f} s"
    return None


def _process_alive(pid: int) -> bool:
    if sys.platform == "win32":
        return True  # os.kill(pid, 0) would send CTRL_C_EVENT there; assume alive
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    try:
        # A zombie (dead, not yet reaped) still answers kill(0).
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True

