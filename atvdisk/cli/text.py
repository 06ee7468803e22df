"""Text that reaches the user's terminal: names from a disk, an archive or a manifest are shown,
never obeyed. :class:`~atvdisk.cli.console.Console` and the progress displays put every line
through :func:`printable`; JSON goes through :func:`json_text`.
"""

from __future__ import annotations

import json
import re

# What a terminal acts on instead of showing: C0 controls (ESC starts colour, cursor and title
# sequences; CR and BS overwrite what is shown), DEL, C1 controls (U+009B is a one-character
# CSI), and the characters that reorder or split what is shown (bidi embeddings, overrides and
# isolates, line and paragraph separators). Names read from a disk, an archive or a manifest may
# hold any of them; every line atvdisk prints shows them as escapes instead.
_TERMINAL_ACTS_ON = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE_IN_TEXT = re.compile(f"[{_TERMINAL_ACTS_ON}]")  # tab and newline are kept
_UNSAFE_IN_LINE = re.compile(f"[{_TERMINAL_ACTS_ON}\t\n]")
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")  # json.dumps escapes C0


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(text: str, *, one_line: bool = False) -> str:
    """``text`` safe to show on a terminal: what a terminal would act on becomes ``\\xNN`` /
    ``\\uNNNN``. ``one_line``: newlines and tabs too (a name in a listing stays on its row)."""
    return (_UNSAFE_IN_LINE if one_line else _UNSAFE_IN_TEXT).sub(_escape, text)


def json_text(document: object, **dumps: object) -> str:
    """``json.dumps(document)`` with non-ASCII kept and what a terminal acts on as ``\\uNNNN``
    (C0 is escaped by json itself): the same data for a JSON parser, inert on a terminal."""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(document, ensure_ascii=False, **dumps))  # type: ignore[arg-type]
