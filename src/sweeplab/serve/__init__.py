"""The live dashboard, ``sweeplab serve``: a read-only web app over the run store.

``serve(db_path, host, port)`` serves the pages (studies, study, run, compare) and the JSON API
under ``/api/`` they call; ``make_app(store)`` is the Starlette app alone (for tests). It reads
through the store's readers and computes statistics with the report's functions; it never writes
or trains. Modules: ``data`` (studies, a study's curves, the live cursor), ``tables`` (the
report's table, sweeps, runs, comparisons), ``app`` (routes and errors), ``server`` (binding and
running), ``static/`` (the pages, their scripts and the vendored uPlot chart library).
"""

from sweeplab.serve.server import DEFAULT_HOST, DEFAULT_PORT, serve

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "serve"]
