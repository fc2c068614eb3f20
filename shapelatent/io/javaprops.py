"""Java ``.properties`` files, read with the semantics of ``java.util.Properties.load``.

Sweet Home 3D furniture libraries (``.sh3f``) describe their items in ``PluginFurnitureCatalog.properties``.
This module reproduces Java's reader exactly enough that every key and value comes out as Sweet Home 3D
sees them:

- natural lines end at ``\\n``, ``\\r`` or ``\\r\\n`` (and only there: Latin-1 ``\\x85`` is an ordinary
  character, unlike in :meth:`str.splitlines`);
- leading blanks (space, tab, form feed) are skipped; a line whose first non-blank character is ``#`` or
  ``!`` is a comment, and blank lines are ignored;
- a line ending in an odd number of backslashes continues on the next line, whose leading blanks are
  dropped (a comment line never continues; a continuation line is never a comment);
- the key ends at the first unescaped ``=``, ``:`` or blank; blanks around the separator are skipped,
  and a line with a key only (no separator) gives that key an empty value;
- escapes in keys and values: ``\\uXXXX``, ``\\t``, ``\\n``, ``\\r``, ``\\f``; a backslash before any
  other character stands for that character (``\\=``, ``\\:``, ``\\#``, ``\\ ``, ``\\\\``);
- when a key occurs twice, the last value wins.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["parse_properties", "read_properties"]

_BLANK = " \t\f"
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield ``(first natural line number, logical line)``, as Java's ``Properties.LineReader`` does."""
    natural = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(natural, start=1):
        line = raw.lstrip(_BLANK)
        if not buf:
            if not line or line[0] in "#!":
                continue  # blank line or comment (a comment never continues)
            start = number
        elif not line:
            # An empty continuation line ends the logical line (Java does not skip past its newline).
            yield start, "".join(buf)
            buf = []
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            buf.append(line[:-1])
            continue
        buf.append(line)
        yield start, "".join(buf)
        buf = []
    if buf:  # a final line ending in a backslash: Java drops the backslash
        yield start, "".join(buf)


def _unescape(s: str, where: str) -> str:
    if "\\" not in s:
        return s
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        e = s[i + 1]
        if e == "u":
            digits = s[i + 2 : i + 6]
            if len(digits) != 4 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise ValueError(f"{where}: malformed \\uXXXX escape {s[i : i + 6]!r}; write four hex digits.")
            out.append(chr(int(digits, 16)))
            i += 6
        else:
            out.append(_ESCAPES.get(e, e))
            i += 2
    return "".join(out)


def _split_key_value(line: str) -> tuple[str, str]:
    """Split a logical line at the first unescaped separator (``=``, ``:`` or a blank)."""
    n = len(line)
    key_end, value_start, has_sep, escaped = n, n, False, False
    for i, c in enumerate(line):
        if not escaped and c in "=:":
            key_end, value_start, has_sep = i, i + 1, True
            break
        if not escaped and c in _BLANK:
            key_end, value_start = i, i + 1
            break
        escaped = (c == "\\") and not escaped
    while value_start < n:
        c = line[value_start]
        if c not in _BLANK:
            if not has_sep and c in "=:":
                has_sep = True
            else:
                break
        value_start += 1
    return line[:key_end], line[value_start:]


def parse_properties(text: str, source: str = "<properties>") -> dict[str, str]:
    """Parse the text of a ``.properties`` file like ``java.util.Properties.load(Reader)``.

    Args:
        text: the whole file as text.
        source: a name for error messages (e.g. the file or archive member).

    Returns:
        key -> value, both unescaped; a later duplicate key replaces an earlier one.

    Raises:
        ValueError: a malformed ``\\uXXXX`` escape (the message names ``source`` and the line).
    """
    props: dict[str, str] = {}
    for number, line in _logical_lines(text):
        key, value = _split_key_value(line)
        where = f"{source}, line {number}"
        props[_unescape(key, where)] = _unescape(value, where)
    return props


def read_properties(data: bytes, source: str = "<properties>") -> dict[str, str]:
    """Parse a ``.properties`` file from its bytes, decoded as ISO-8859-1 like ``Properties.load(InputStream)``.

    Args:
        data: the file's bytes.
        source: a name for error messages.

    Returns:
        key -> value, as :func:`parse_properties`.

    Raises:
        ValueError: a malformed ``\\uXXXX`` escape.
    """
    return parse_properties(data.decode("latin-1"), source)
