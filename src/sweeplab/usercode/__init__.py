"""The user's own code: models and data functions named ``"nets.py:CoolNet"`` in a config.

A reference names a Python file (relative to the study or config file that mentions it) and an
attribute in it. :func:`attach_code` reads the file when a config is built and puts its text and
hash into the config (``RunConfig.code``), so the code travels *by content*: a spawned worker or
another machine executes exactly the text the run was defined with, never a path that only
exists here, and the hash is part of the run's identity. :func:`load_module` executes such a
text once per process (cached by hash) and turns its failures into one-line errors that name
the file and line.
"""

from .files import attach_code, code_file, parse_ref, ref_key
from .modules import an, failure_line, load_attribute, load_module

__all__ = ["an", "attach_code", "code_file", "failure_line", "load_attribute", "load_module", "parse_ref", "ref_key"]
