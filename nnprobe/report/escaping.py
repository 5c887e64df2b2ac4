"""What comes from data (paths, class names, metric names, messages) can never break the formats CI reads:
XML 1.0 that stays well-formed, no line of a report or of stderr that a GitHub runner takes for a workflow
command, stderr lines that stay single lines. Markdown cells are escaped by `report.markdown.escape`.

A GitHub runner reads every line of a step's stdout and stderr that starts (after blanks) with `::` as a
workflow command (`::error ...`, `::stop-commands::`, `::add-mask::`), and the older `##[` form too
(actions/runner ActionCommand). nnprobe writes its own annotations that way in `--format github`; a line
of data must never look like one. Lines that would are changed so they render the same to a reader:
`\\:` in markdown, `&#58;` in XML, a word joiner (U+2060) in front elsewhere. Every other byte is left as
it was, so ordinary reports are unchanged.
"""
from __future__ import annotations

import html
import re

# XML 1.0 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]; even as &#..; the rest is
# not well-formed (REFERENCE: "replace them before writing JUnit")
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# HTML: C0 controls other than tab, LF, FF, CR, the C1 controls and noncharacters are parse errors, lone
# surrogates cannot be written as UTF-8 at all (WHATWG HTML 13.2.5, "control-character-in-input-stream")
_HTML_INVALID = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
_COMMAND = re.compile(r"(\A|[\r\n])([ \t\f\v]*)(::|##\[)")  # a line starts after CR or LF alike
_CONTROL = re.compile("[\x00-\x1f\x7f\u2028\u2029\x85]")
REPLACEMENT = "\ufffd"
WORD_JOINER = "\u2060"


def xml_text(text: str) -> str:
    """`text` with every character XML 1.0 forbids replaced by U+FFFD (ElementTree escapes the rest)."""
    return _XML_INVALID.sub(REPLACEMENT, str(text))


def html_text(text: object) -> str:
    """`text` for an HTML element or a quoted attribute value: `& < > " '` as character references, every
    character HTML forbids replaced by U+FFFD. What comes from data reaches `--format html` only this way:
    it can neither open a tag, end an attribute nor start a script."""
    return html.escape(_HTML_INVALID.sub(REPLACEMENT, str(text)), quote=True)


def defuse_commands(text: str, fmt: str) -> str:
    """`text` with no line a GitHub runner would read as a workflow command, written so it reads the same
    in `fmt` (markdown / github: a backslash-escaped colon; junit: an XML character reference; anything
    else: a word joiner first)."""
    def neutral(match: re.Match) -> str:
        start, marker = match.group(1) + match.group(2), match.group(3)
        if fmt in ("markdown", "github"):
            return start + "\\" + marker
        if fmt == "junit":
            return start + ("&#58;:" if marker == "::" else "&#35;#[")
        return start + WORD_JOINER + marker
    return _COMMAND.sub(neutral, text)


def one_line(text: str) -> str:
    """One stderr line: line breaks and other control characters shown as escapes (`\\n`, `\\x1b`), so a
    message can neither start a new line (a fake `::error`) nor move the terminal's cursor."""
    def shown(match: re.Match) -> str:
        char = match.group(0)
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\x{ord(char):02x}" if ord(char) < 256
                                                                 else f"\\u{ord(char):04x}")
    return _CONTROL.sub(shown, str(text))
