"""Untrusted text made inert for the browser (markdown without fetches, names without
markdown), and checked for what no database can store.

Item text comes from model outputs and import files, names from whoever typed
them: a rater's browser must not fetch anything because of them. Streamlit
escapes HTML already (no ``unsafe_allow_html`` anywhere); what remains are
markdown images, which a browser fetches from any address. These helpers are
pure string functions, used by the pages.
"""

from __future__ import annotations

import re

#: Characters and lines shown before a long text is cut, with a control to show the
#: rest: about a screen, so the browser lays out little per item on load.
PREVIEW_CHARS = 1_500
PREVIEW_LINES = 40

# Everything CommonMark lets a backslash escape, plus Streamlit's own markup:
# ":" (emoji and icon shortcodes), "$" (math) and "~" (strikethrough).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$&=\"'])")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def escape_markdown(text: object) -> str:
    """Return ``text`` so that markdown shows it literally: no link, image, emphasis or icon."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))
    # A newline would start a new block (a heading, a list); names are one line.
    return " ".join(escaped.split())


def _neutralize_images(line: str) -> str:
    """Escape ``![`` outside inline code spans, so an image becomes a plain link."""
    out, i, n = [], 0, len(line)
    while i < n:
        if line[i] == "`":
            run = len(line[i:]) - len(line[i:].lstrip("`"))
            end = line.find("`" * run, i + run)
            if end != -1:  # a complete code span: copied as it is
                out.append(line[i:end + run])
                i = end + run
                continue
            out.append(line[i:i + run])
            i += run
            continue
        if line.startswith("![", i) and (i == 0 or line[i - 1] != "\\"):
            out.append("\\![")
            i += 2
            continue
        out.append(line[i])
        i += 1
    return "".join(out)


def inert_markdown(text: str | None) -> str:
    """Return markdown that renders as written but never makes the browser fetch anything.

    Images (``![alt](url)``, ``![alt][ref]``) become links to their address,
    shown as text: clicking one is the rater's choice, loading one is not. Code
    blocks and code spans are left exactly as they are.
    """
    if not text:
        return ""
    lines = text.split("\n")
    fence: str | None = None
    for k, line in enumerate(lines):
        match = _FENCE.match(line)
        if fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
            continue
        if match:
            fence = match.group(1)
            continue
        if line.startswith(("    ", "\t")):  # an indented code block
            continue
        if "![" in line:  # the character loop costs ~1 ms per screen of text: only where needed
            lines[k] = _neutralize_images(line)
    return "\n".join(lines)


def split_long(text: str | None, limit: int = PREVIEW_CHARS,
               max_lines: int = PREVIEW_LINES) -> tuple[str, str]:
    """Split ``text`` into a first screen of about ``limit`` characters and the rest.

    The cut falls on a line break near the limit when there is one, so a code
    block or a paragraph is not cut mid-line. At most ``max_lines`` lines are
    kept: a screen of many short lines costs the browser as much as long ones.
    """
    text = text or ""
    line_end = -1
    for _ in range(max_lines):
        line_end = text.find("\n", line_end + 1, limit)
        if line_end == -1:
            break
    else:  # max_lines line breaks before the limit: cut at the last of them
        if line_end + 1 < len(text):
            return text[:line_end], text[line_end:]
    if len(text) <= limit:
        return text, ""
    cut = text.rfind("\n", limit // 2, limit)
    cut = cut if cut != -1 else limit
    return text[:cut], text[cut:]


_MARKUP = re.compile(r"!?\[([^\]]*)\]\([^)]*\)|[*_`#>~|]+")


def _squash(raw: str, limit: int) -> str:
    """Return ``raw`` with its whitespace runs as single spaces: all of it, or a prefix of
    more than ``limit`` characters (squashing a prefix gives a prefix of the whole)."""
    size = 2 * limit + 2
    while True:
        flat = " ".join(raw[:size].split())
        if len(flat) > limit or size >= len(raw):
            return flat
        size *= 2


def plain_line(text: str | None, limit: int = 120) -> str:
    """Return ``text`` as one line of plain text, markdown marks dropped, cut at ``limit``.

    Links and images keep their text only, so a row names the response, not a URL.
    """
    text = text or ""
    # Flattened only as far as the line needs: a whole 1 MB prompt took ~100 ms, and the
    # rate page lists ten prompts on every run.
    pieces: list[str] = []
    end = 0
    checked_at = 2 * limit
    for match in _MARKUP.finditer(text):
        pieces += (text[end:match.start()], match.group(1) or " ")
        end = match.end()
        if end >= checked_at:
            flat = _squash("".join(pieces), limit)
            if len(flat) > limit:
                return flat[:limit - 1] + "…"
            checked_at = 2 * end
    # No markup after ``end``: the rest is squashed as it is.
    flat = _squash("".join(pieces) + text[end:], limit)
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def text_problem(text: str) -> str | None:
    """Return what makes ``text`` unstorable (a NUL, a lone surrogate), or None."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = ascii(text[exc.start])[1:-1]
        return (f"contains a lone surrogate {char} at character {exc.start + 1}, which is not "
                "valid Unicode text")
    return None
