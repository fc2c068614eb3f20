"""Licences of Sweet Home 3D models, recognised in licence files and statements.

The library's ``LICENSE.TXT`` (or its ``license`` key; the stricter one if they disagree) applies to every
item, except that a licence file in an item's own model folder (``BLENDSWAP_LICENSE.txt``,
``NNNNN - LICENSE.html``) overrides it. Both are normalised to SPDX-like ids (``CC0-1.0``, ``CC-BY-3.0``,
``CC-BY-3.0-US``); a licence text that cannot be recognised keeps the library licence and is reported
(:func:`~shapelatent.data.sources.sweethome3d.catalog.read_catalog` applies these rules).
"""

from __future__ import annotations

import html
import re

__all__ = ["license_from_text"]

_CC0 = re.compile(r"creative commons zero|\bcc-?0\b|\bcc[- ]?zero\b|\bpublic domain\b", re.I)
_BY_NC = re.compile(r"attribution[- ]non[- ]?commercial(?P<sa>[- ]share[- ]?alike)?(?:\s+(?P<v>\d\.\d))?", re.I)
_BY_SA = re.compile(r"attribution[- ]share[- ]?alike(?:\s+(?P<v>\d\.\d))?", re.I)
_BY = re.compile(
    r"(?:creative commons\s+(?:\d\.\d\s+)?attribution|\bcc[- ]by)(?![- ](?:share|non|no))"
    r"(?:[\s-]+(?P<v>\d\.\d))?(?P<us>\s+(?:united states|us)\b)?",
    re.I,
)
_STATEMENT = re.compile(r"(?:released under|following licen[sc]e:?|(?:is|are) under the)\s+(?:the\s+)?(.{0,160})", re.I)


def _licenses_in(text: str) -> list[tuple[int, str]]:
    found = []
    for m in _CC0.finditer(text):
        found.append((m.start(), "CC0-1.0"))
    for m in _BY_NC.finditer(text):
        found.append((m.start(), "CC-BY-NC" + ("-SA" if m.group("sa") else "") + (f"-{m['v']}" if m["v"] else "")))
    for m in _BY_SA.finditer(text):
        found.append((m.start(), "CC-BY-SA" + (f"-{m['v']}" if m["v"] else "")))
    for m in _BY.finditer(text):
        found.append((m.start(), "CC-BY" + (f"-{m['v']}" if m["v"] else "") + ("-US" if m["us"] else "")))
    return sorted(found)


def license_from_text(text: str) -> str | None:
    """Recognise a licence in a licence file or statement (plain text or HTML).

    The sentence that states the licence ("Released under ...", "... following license: ...", "... are
    under the ...") decides; without one, the text must name exactly one licence.

    Returns:
        an SPDX-like id (``CC0-1.0``, ``CC-BY-3.0``, ``CC-BY-3.0-US``, ``CC-BY-SA-4.0``, ...) or None.
    """
    plain = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.I | re.S)
    plain = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", plain)).split())
    statement = _STATEMENT.search(plain)
    if statement:
        found = _licenses_in(statement.group(1))
        if found:
            return found[0][1]
    names = {name for _, name in _licenses_in(plain)}
    return names.pop() if len(names) == 1 else None
