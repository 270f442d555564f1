"""Finding text rendered as safe HTML: escaping first, then paragraphs, lists and bold only."""

from __future__ import annotations

from smartapp.dashboard.text import render_detail


def test_paragraphs_lists_and_bold() -> None:
    html = render_detail("First line.\n- one\n- **two**\nAfter.\n\nNew para.")
    assert str(html) == (
        "<p>First line.</p><ul><li>one</li><li><strong>two</strong></li></ul>"
        "<p>After.</p><p>New para.</p>"
    )


def test_html_in_the_text_is_escaped() -> None:
    html = str(render_detail('Clozapine <script>alert("x")</script> & [link](javascript:x)'))
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; [link](javascript:x)" in html
    assert "<a" not in html


def test_bold_markers_cannot_smuggle_markup() -> None:
    assert str(render_detail("**<img src=x onerror=y>**")) == (
        "<p><strong>&lt;img src=x onerror=y&gt;</strong></p>"
    )


def test_empty_text_renders_nothing() -> None:
    assert str(render_detail("")) == ""
