"""Text from the study file (names, descriptions) made inert in Markdown.

A Markdown viewer renders raw HTML, so a study or arm name such as ``<img src=x onerror=...>``
would run in the reader's viewer if written as is. Every piece of text goes through ``md_text``:
HTML-escaped (``&``, ``<``, ``>``), Markdown punctuation that would start emphasis, code or a
link backslash-escaped, line breaks turned into spaces (a name cannot end a heading or a table
row). Escaped characters render as themselves, so the text reads the same as in report.html.
"""

from __future__ import annotations

import html
import re

_PUNCT = re.compile(r"([\\`*\[\]~])")
_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")  # intraword _ is not emphasis
_BLOCK_START = re.compile(r"^(\s*)([#>+=-]|\d+[.)])")
_NEWLINES = re.compile(r"[\r\n\u2028\u2029]+")


def md_text(text: object, *, line_start: bool = False) -> str:
    """``text`` as inline Markdown that shows exactly that text and nothing else.

    ``line_start``: the text begins a line (a paragraph), so a leading ``#``, ``-``, ``>`` or
    ``1.`` is escaped too, lest it become a heading, list or quote.
    """
    s = _NEWLINES.sub(" ", str(text))
    s = html.escape(s, quote=False)
    s = _PUNCT.sub(r"\\\1", s)
    s = _UNDERSCORE.sub(r"\\_", s)
    if line_start:
        s = _BLOCK_START.sub(lambda m: m.group(1) + "\\" + m.group(2), s, count=1)
    return s


def md_cell(text: object) -> str:
    """``md_text`` for a table cell: pipes escaped as well."""
    return md_text(text).replace("|", "\\|")
