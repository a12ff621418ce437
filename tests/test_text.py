"""prefstore.text: untrusted markdown that fetches nothing, and names that are never markdown."""

import pytest
from markdown_it import MarkdownIt

from prefstore import text

MD = MarkdownIt("commonmark")


def image_sources(markdown: str) -> list[str]:
    """Every address a CommonMark renderer would load an image from."""
    found = []
    for token in MD.parse(markdown):
        for child in token.children or []:
            if child.type == "image":
                found.append(child.attrs["src"])
    return found


HOSTILE = [
    "![x](http://evil.example/beacon.png)",
    "look ![a](http://evil.example/a) and ![b](<http://evil.example/b c>)",
    "ref style ![pixel][p]\n\n[p]: http://evil.example/pixel",
    "nested [![badge](http://evil.example/b)](http://x)",
    "collapsed ![p][]\n\n[p]: http://evil.example/c",
    "shortcut ![p]\n\n[p]: http://evil.example/d",
    "- list ![x](http://evil.example/e)\n> quote ![y](http://evil.example/f)",
    "# heading ![x](http://evil.example/g)",
    "escaped already \\![x](http://evil.example/h) and ![y](http://evil.example/i)",
]


@pytest.mark.parametrize("source", HOSTILE)
def test_no_image_survives(source):
    assert image_sources(source)  # the probe works: these are images in plain markdown
    assert image_sources(text.inert_markdown(source)) == []


def test_the_address_stays_visible_as_a_link():
    out = text.inert_markdown("see ![chart](http://host/c.png)")
    assert out == "see \\![chart](http://host/c.png)"
    html = MD.render(out)
    assert '<a href="http://host/c.png">chart</a>' in html and "<img" not in html


def test_code_is_left_exactly_as_it_is():
    source = ("```md\n![x](http://a/b)\n```\n\ninline `![y](http://c)` and ~~~\n"
              "    ![indented](http://d)\n")
    out = text.inert_markdown(source)
    assert "```md\n![x](http://a/b)\n```" in out
    assert "`![y](http://c)`" in out
    assert "    ![indented](http://d)" in out


@pytest.mark.parametrize("name", [
    "![x](http://evil.example/p)", "**bold** _it_ `code` [link](http://x)", "# Heading",
    ":material/home: :smile:", "$x^2$", "<img src=x>", "- item\n1. item", "a\\b", "~~s~~",
])
def test_escaped_names_render_as_their_own_text(name):
    html = MD.render(text.escape_markdown(name))
    assert "<img" not in html and "<a " not in html and "<strong>" not in html
    assert "<em>" not in html and "<code>" not in html and "<h1>" not in html
    assert "<li>" not in html


def test_escape_keeps_plain_names_readable():
    assert text.escape_markdown("Ada Lovelace") == "Ada Lovelace"
    assert text.escape_markdown("gpt-4.1") == "gpt\\-4\\.1"


def test_split_long_cuts_at_a_line_near_the_limit():
    body = "\n".join(f"line {k:05d}" for k in range(5000))
    first, rest = text.split_long(body, limit=1000, max_lines=1000)
    assert first + rest == body
    assert len(first) <= 1000 and first.endswith(("0", "1", "2", "3", "4", "5", "6", "7", "8",
                                                  "9"))
    assert rest.startswith("\nline ")
    assert text.split_long("short") == ("short", "")


def test_split_long_keeps_at_most_max_lines():
    body = "\n".join(f"l{k}" for k in range(100))
    first, rest = text.split_long(body, limit=10_000, max_lines=3)
    assert (first, rest[:4]) == ("l0\nl1\nl2", "\nl3\n")
    assert first + rest == body
    # Exactly max_lines lines, or a last line break with nothing after it: not cut.
    assert text.split_long("a\nb\nc", max_lines=2) == ("a\nb", "\nc")
    assert text.split_long("a\nb\n", max_lines=2) == ("a\nb\n", "")
    assert text.split_long("a\nb", max_lines=2) == ("a\nb", "")
    assert text.split_long("\n" * 5000)[0] == "\n" * (text.PREVIEW_LINES - 1)


def test_plain_line_drops_markdown_and_keeps_link_text():
    assert text.plain_line("**Bold** answer with `code`\n\n- a list ![pic](http://x/p.png) "
                           "[docs](https://x)") == "Bold answer with code - a list pic docs"
    assert text.plain_line("x" * 200, limit=10) == "x" * 9 + "…"
    assert text.plain_line(None) == ""


def test_plain_line_of_a_long_text_is_cut_from_its_start_alone():
    # The link straddles the first point where the line is checked (2 x limit).
    long_text = "**a** [" + "t" * 30 + "](" + "u" * 300 + ") " + "b " * 500_000
    assert text.plain_line(long_text, limit=40) == "a " + "t" * 30 + " b b b …"
    assert text.plain_line("word " * 200_000, limit=12) == "word word w…"
    assert text.plain_line("  a  " + " " * 1_000 + "[x](y)", limit=10) == "a x"


@pytest.mark.parametrize("limit", [1, 5, 17, 60])
def test_plain_line_says_what_the_whole_flattened_text_says(limit):
    pieces = ["ab", " ", "\n", "**", "`", "#", "[t](u)", "![p](http://x)", "[", "](", ")",
              "x" * 7, "   ", "|", "[]()"]
    for seed in range(300):
        order = [pieces[(seed * 7 + k * k * 3) % len(pieces)] for k in range(seed % 40)]
        source = "".join(order) * (1 + seed % 5)
        whole = " ".join(text._MARKUP.sub(lambda m: m.group(1) or " ", source).split())
        expected = whole if len(whole) <= limit else whole[:limit - 1] + "…"
        assert text.plain_line(source, limit) == expected
