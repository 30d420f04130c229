"""Which targets may follow a redirect or a link: paths on this portal only."""

from __future__ import annotations

import re

# Printable ASCII without the space: a line break would end the header the target is put in.
_OUTSIDE_PRINTABLE_ASCII = re.compile(r"[^\x21-\x7e]")


def local_path(target: str | None) -> str | None:
    """`target` if it is a path on this portal (no `//host`, no scheme, no backslash, no control character)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if _OUTSIDE_PRINTABLE_ASCII.search(target):
        return None
    return target
