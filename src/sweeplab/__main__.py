"""`python -m sweeplab` runs the CLI."""

from sweeplab.cli.main import run

run()
