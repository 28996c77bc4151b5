"""Reports: a study's curves, comparison table, statistics and written findings, from the store.

``write_report(db_path, study, out_dir)`` writes ``report.html`` (one self-contained file) and
``report.md`` (figures as PNG files in ``figures/`` beside it). ``build_report(store, study)``
gives the same content as data: header, one :class:`ArmSetting` per table row (each number a
:class:`Summary` over seeds), findings and figures. Reports only read the store; they never train.

Modules: ``tables`` (store -> runs -> arm settings), ``stats`` (summaries and tests),
``findings`` (sentences), ``figures`` (matplotlib), ``render`` (HTML/Markdown), ``build``.
"""

from .build import FORMATS, Report, build_report, parse_formats, save_report, write_report
from .figures import Figure
from .findings import Finding
from .stats import ALPHA, ChanceTest, Comparison, Summary, chance_test, summarize, welch
from .tables import ArmSetting, Header, RunData

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
