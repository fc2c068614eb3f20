"""Java ``Properties.load`` semantics, checked against hand-worked cases (the oracle is the Java spec)."""

from __future__ import annotations

import pytest

from shapelatent.io.javaprops import parse_properties, read_properties


def test_separators_and_blanks():
    text = "a=1\nb:2\nc 3\nd\t=\t4\n  e  :  5  \nf= \ng\nh   \n"
    assert parse_properties(text) == {"a": "1", "b": "2", "c": "3", "d": "4", "e": "5  ", "f": "", "g": "", "h": ""}


def test_only_first_separator_counts():
    assert parse_properties("k = = v\nurl=http://x:80/a=b\nsp a b c") == {
        "k": "= v",
        "url": "http://x:80/a=b",
        "sp": "a b c",
    }
    # blank then '=' is one separator; blank then another word starts the value
    assert parse_properties("key  =value\nkey2  value2") == {"key": "value", "key2": "value2"}


def test_comments_and_blank_lines():
    text = "# comment\n! also a comment\n   # indented comment\n\n   \n\tx=1\n#y=2\n"
    assert parse_properties(text) == {"x": "1"}


def test_escapes_in_keys_and_values():
    text = r"a\=b\:c\ d=v\=1\tx\ny\rz\fw\\q\#r\!s" + "\n" + r"\#notcomment=1"
    assert parse_properties(text) == {"a=b:c d": "v=1\tx\ny\rz\fw\\q#r!s", "#notcomment": "1"}
    assert parse_properties(r"u=\u00e9t\u00E9 \u20ac") == {"u": "été €"}
    assert parse_properties(r"other=\q\z") == {"other": "qz"}  # unknown escapes stand for the character


def test_continuation_lines():
    text = "long=first \\\n     second \\\n\tthird\nnext=1\n"
    assert parse_properties(text) == {"long": "first second third", "next": "1"}
    # an even number of trailing backslashes is an escaped backslash, not a continuation
    assert parse_properties("a=x\\\\\nb=y") == {"a": "x\\", "b": "y"}
    # three backslashes: one escaped backslash plus a continuation
    assert parse_properties("a=x\\\\\\\n  y") == {"a": "x\\y"}
    # a continuation line is not a comment even when it starts with '#'
    assert parse_properties("a=1\\\n  #2") == {"a": "1#2"}
    # a comment line ending in a backslash does not continue
    assert parse_properties("# c \\\nb=2") == {"b": "2"}
    # an empty continuation line ends the logical line
    assert parse_properties("a=1\\\n\nb=2") == {"a": "1", "b": "2"}
    # a key can continue too
    assert parse_properties("ke\\\n  y=v") == {"key": "v"}
    # a final backslash at the end of the file is dropped
    assert parse_properties("a=1\\") == {"a": "1"}


def test_line_endings_and_latin1():
    assert parse_properties("a=1\r\nb=2\rc=3\n") == {"a": "1", "b": "2", "c": "3"}
    # Latin-1 bytes, including 0x85 which str.splitlines() would wrongly treat as a line break
    data = "name=Caf\xe9 \x85 x\ncreator=\\u00c9mile\n".encode("latin-1")
    assert read_properties(data) == {"name": "Café \x85 x", "creator": "Émile"}


def test_duplicate_key_last_wins_and_key_without_value():
    text = "a=1\na=2\ndropOnTopElevation#-1\n"
    assert parse_properties(text) == {"a": "2", "dropOnTopElevation#-1": ""}


def test_malformed_unicode_escape_names_the_source_and_line():
    with pytest.raises(ValueError, match=r"catalog.properties, line 2: malformed \\uXXXX escape"):
        parse_properties("ok=1\nbad=\\u12G4\n", "catalog.properties")
    with pytest.raises(ValueError, match="malformed"):
        read_properties(b"x=\\u12", "f")
