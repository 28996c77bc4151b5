"""Reports: a study's curves, comparison table, statistics and written findings, from the store.

``write_report(db_path, study, out_dir)`` writes ``report.html`` (one self-contained file) and
``report.md`` (figures as PNG files in ``figures/`` beside it). ``build_report(store, study)``
gives the same content as data: header, one :class:`ArmSetting` per table row (each number a
:class:`Summary` over seeds), findings and figures. Reports only read the store; they never train.

Modules: ``tables`` (store -> runs -> arm settings), ``stats`` (summaries and tests),
``findings`` (sentences), ``figures`` (matplotlib), ``render`` (HTML/Markdown), ``build``.
"""

import importlib
from typing import Any

#: Public names -> the module defining them, loaded on first use: ``report.numbers`` and
#: ``report.paths`` (which the CLI needs at start) must not pull in matplotlib and scipy.
_NAMES = {
    **dict.fromkeys(("FORMATS", "Report", "build_report", "parse_formats", "save_report", "write_report"), "build"),
    "Figure": "figures",
    "Finding": "findings",
    **dict.fromkeys(("ALPHA", "ChanceTest", "Comparison", "Summary", "chance_test", "summarize", "welch"), "stats"),
    **dict.fromkeys(("ArmSetting", "RunData"), "tables"),
    "Header": "header",
}


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALPHA",
    "FORMATS",
    "ArmSetting",
    "ChanceTest",
    "Comparison",
    "Figure",
    "Finding",
    "Header",
    "Report",
    "RunData",
    "Summary",
    "build_report",
    "chance_test",
    "parse_formats",
    "save_report",
    "summarize",
    "welch",
    "write_report",
]
