"""sweeplab: ablation studies of small neural networks on PyTorch.

A study (baseline + arms + seeds) is one TOML file; every run is trained fast on CPU or GPU,
resumably, with every epoch stored in SQLite; reports compare arms with statistics.
"""

__version__ = "0.1.0"
