"""Click tracking, the open pixel and the text alternative (no database).

The HTML is normally prepared for tracking when it is compiled; what cannot be is
processed after rendering. Both must give the same message, so every test that
renders runs both ways (the `path` fixture).
"""

import time

import pytest

from templates_app import tracking_html
from templates_app.rendering import CompiledTemplate, RenderError, TemplateSource, check_source, prepare
from templates_app.sandbox import LimitExceeded, RenderLimits, budget
from templates_app.tracking_html import LinkTracking, body_close_offset, html_to_text, track_html

PIXEL_URL = "https://t.example/o/msg-1.gif"


class Maker:
    """Records what the tracking side is asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def click_url(self, url: str, index: int) -> str:
        self.calls.append((url, index))
        return f"https://t.example/c/{index}"

    def tracking(self) -> LinkTracking:
        return LinkTracking(click_url=self.click_url, open_pixel_url=lambda: PIXEL_URL)


@pytest.fixture(params=["prepared", "after-rendering"])
def path(request) -> str:
    """How the HTML is processed: its source prepared when compiled, or each rendered message."""
    return request.param


def render_message(source: TemplateSource, context: dict, *, path: str, tracking: LinkTracking | None = None):
    compiled = CompiledTemplate(source, tracked=tracking is not None, prepare_html=path == "prepared")
    return compiled.render(context, tracking=tracking)


def render(html_body: str, context: dict | None = None, *, path: str, text_body: str = "", maker: Maker | None = None):
    maker = maker or Maker()
    source = TemplateSource(channel="email", subject="s", html_body=html_body, text_body=text_body)
    context = {"unsubscribe_url": "https://cc.example/u/tok", **(context or {})}
    return render_message(source, context, path=path, tracking=maker.tracking()), maker


UNTOUCHED = [
    '<a href="mailto:sales@example.com">Mail</a>',
    '<a href="tel:+31201234567">Call</a>',
    '<a href="sms:+31612345678">Text</a>',
    '<a href="#top">Top</a>',
    '<a href="/relative/page">Relative</a>',
    '<a data-notrack href="https://example.com/private">Private</a>',
    '<a href="https://example.com/x" data-notrack="">Marked</a>',
    '<a href="{{ unsubscribe_url }}">Unsubscribe</a>',
    '<a href="mailto:{{ contact.email }}">Mail me</a>',
]


@pytest.mark.parametrize("link", UNTOUCHED)
def test_links_that_must_not_be_tracked_are_left_exactly_as_rendered(link, path):
    context = {"contact": {"email": "ann@example.com"}}
    untracked = render_message(
        TemplateSource(channel="email", subject="s", html_body=f"<body>{link}</body>"),
        {"unsubscribe_url": "https://cc.example/u/tok", **context},
        path=path,
    )
    message, maker = render(f"<body>{link}</body>", context, path=path)
    assert message.html.split("<img")[0] == untracked.html.replace("</body>", "")
    assert maker.calls == []
    assert message.links == ()


def test_every_other_link_is_rewritten_with_the_rendered_original_url(path):
    html = (
        "<body>"
        '<a href="https://example.com/a?x=1&amp;y=2">static</a>\n'
        '<a class="btn" href="{{ shop }}/p/{{ contact.id }}?ref=mail">dynamic</a>\n'
        "<a href=https://example.com/unquoted>unquoted</a>\n"
        "<map><area href='https://example.com/area' alt='area'></map>\n"
        '<a href="{{ "https://example.com/q?a=\\"b\\">c" }}">quotes and > inside Jinja</a>\n'
        '{% for p in products %}<a href="{{ p }}">{{ loop.index }}</a>{% endfor %}'
        "</body>"
    )
    context = {"shop": "https://shop.example", "contact": {"id": "c1"}, "products": ["https://p.example/1"]}
    message, maker = render(html, context, path=path)
    assert [url for url, _ in maker.calls] == [
        "https://example.com/a?x=1&y=2",
        "https://shop.example/p/c1?ref=mail",
        "https://example.com/unquoted",
        "https://example.com/area",
        'https://example.com/q?a="b">c',
        "https://p.example/1",
    ]
    assert [index for _, index in maker.calls] == [0, 1, 2, 3, 4, 5]
    assert message.links == tuple(url for url, _ in maker.calls)
    for index in (0, 1, 2, 4, 5):
        assert f'href="https://t.example/c/{index}"' in message.html
    assert "<area href='https://t.example/c/3' alt='area'>" in message.html
    assert 'class="btn" href="https://t.example/c/1"' in message.html
    assert "example.com" not in message.html


def test_the_same_url_twice_gets_one_index_and_one_signed_url(path):
    html = '<a href="https://example.com/x">one</a> <a href="https://example.com/x">two</a>'
    message, maker = render(html, path=path)
    assert maker.calls == [("https://example.com/x", 0)]
    assert message.html.count('href="https://t.example/c/0"') == 2
    assert message.links == ("https://example.com/x",)


def test_a_link_that_renders_to_the_unsubscribe_url_is_not_tracked(path):
    html = '{% set u = unsubscribe_url %}<a href="{{ u }}">Leave</a>'
    message, maker = render(html, path=path)
    assert '<a href="https://cc.example/u/tok">Leave</a>' in message.html
    assert maker.calls == []


def test_a_link_rendering_to_a_non_http_url_is_left_alone(path):
    message, maker = render('<a href="{{ target }}">x</a>', {"target": "mailto:a@example.com"}, path=path)
    assert '<a href="mailto:a@example.com">x</a>' in message.html
    assert maker.calls == []


def test_the_open_pixel_goes_before_the_closing_body_tag_once(path):
    message, _ = render("<html><body><p>Hi</p></body></html>", path=path)
    assert message.html.endswith(
        '<p>Hi</p><img src="https://t.example/o/msg-1.gif" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0" /></body></html>'
    )
    assert message.html.count("<img") == 1


def test_the_open_pixel_is_appended_when_there_is_no_body_tag(path):
    message, _ = render("<p>Fragment</p>", path=path)
    assert message.html.startswith("<p>Fragment</p><img src=")
    assert message.html.endswith(" />")


def test_a_body_inside_a_comment_or_a_jinja_string_is_not_taken_for_the_real_one(path):
    message, _ = render("<body><!-- </body> -->{{ '</body>' }}<p>End</p></body>", path=path)
    assert message.html.endswith(
        '<p>End</p><img src="https://t.example/o/msg-1.gif" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0" /></body>'
    )


def test_links_inside_html_comments_are_not_rewritten(path):
    message, maker = render('<!-- <a href="https://example.com/hidden">x</a> --><p>x</p>', path=path)
    assert '<!-- <a href="https://example.com/hidden">x</a> -->' in message.html
    assert maker.calls == []


def test_text_alternative_shows_links_as_text_and_url(path):
    html = (
        "<html><head><title>T</title><style>p {color: red}</style></head><body>"
        '<h1>Hello {{ name }}</h1><p>Our <a href="https://example.com/sale">spring sale</a> starts now.</p>'
        "<ul><li>One</li><li>Two</li></ul>"
        '<p><a href="https://example.com/">https://example.com/</a> <a href="mailto:a@example.com">Mail us</a></p>'
        "</body></html>"
    )
    source = TemplateSource(channel="email", subject="s", html_body=html)
    message = render_message(source, {"name": "Ann & Bob"}, path=path)
    assert message.text == (
        "Hello Ann & Bob\n\n"
        "Our spring sale (https://example.com/sale) starts now.\n\n"
        "- One\n- Two\n\n"
        "https://example.com/ Mail us (mailto:a@example.com)"
    )


def test_text_alternative_links_are_tracked_with_the_same_signed_urls(path):
    message, maker = render('<p><a href="{{ url }}">Shop</a></p>', {"url": "https://example.com/s"}, path=path)
    assert message.text == "Shop (https://t.example/c/0)"
    assert maker.calls == [("https://example.com/s", 0)]


def test_text_alternative_keeps_the_structure_of_loops_and_conditions(path):
    html = (
        "<ul>{% for p in products %}<li>{{ p.name }}</li>{% endfor %}</ul>"
        "{% if vip %}<p>VIP offer</p>{% else %}<p>Regular offer</p>{% endif %}"
    )
    source = TemplateSource(channel="email", subject="s", html_body=html)
    context = {"products": [{"name": "A"}, {"name": "B"}], "vip": True}
    message = render_message(source, context, path=path)
    assert message.text == "- A\n- B\n\nVIP offer"


def test_an_explicit_text_body_is_used_as_written(path):
    message, _ = render("<p>HTML</p>", text_body="Plain {{ 1 + 1 }}", path=path)
    assert message.text == "Plain 2"


def test_raw_blocks_are_tracked_after_rendering():
    html = '<body>{% raw %}<p>{{ not jinja }}</p>{% endraw %}<a href="https://example.com/r">r</a></body>'
    message, maker = render(html, path="prepared")
    source = TemplateSource(channel="email", subject="s", html_body=html)
    assert prepare(source, organization_id="tracking-tests", tracked=True).html_prepared is False
    assert "<p>{{ not jinja }}</p>" in message.html
    assert 'href="https://t.example/c/0"' in message.html
    assert maker.calls == [("https://example.com/r", 0)]
    assert message.html.endswith(" /></body>")
    assert message.text == "{{ not jinja }}\n\nr (https://t.example/c/0)"


def test_track_html_processes_html_from_elsewhere():
    maker = Maker()
    result = track_html(
        '<p><a href="https://example.com/a">A</a> <a href="#x">X</a> <a href="tel:1">T</a></p>', maker.tracking()
    )
    assert result.html == (
        '<p><a href="https://t.example/c/0">A</a> <a href="#x">X</a> <a href="tel:1">T</a></p>'
        '<img src="https://t.example/o/msg-1.gif" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0" />'
    )
    assert result.links == ("https://example.com/a",)


def test_html_to_text_for_rendered_html():
    assert html_to_text("<p>A&amp;B</p><p>Line<br>break <a href='https://e.example'>link</a></p>") == (
        "A&B\n\nLine\nbreak link (https://e.example)"
    )


def test_an_error_in_the_click_url_maker_is_raised_as_it_is(path):
    def broken(url, index):
        raise KeyError("signing key missing")

    source = TemplateSource(channel="email", subject="s", html_body='<a href="https://example.com">x</a>')
    with pytest.raises(KeyError):
        render_message(
            source,
            {},
            path=path,
            tracking=LinkTracking(click_url=broken, open_pixel_url=lambda: PIXEL_URL),
        )


def test_a_tracked_render_still_reports_template_errors_per_field(path):
    with pytest.raises(RenderError) as caught:
        render('<p>\n<a href="{{ missing }}">x</a></p>', path=path)
    assert caught.value.errors == {"html_body": ["line 2: 'missing' is undefined"]}


def test_the_paths_are_what_they_say():
    source = TemplateSource(channel="email", subject="s", html_body='<a href="https://example.com/{{ n }}">x</a>')
    prepared = CompiledTemplate(source, tracked=True)
    after = CompiledTemplate(source, tracked=True, prepare_html=False)
    assert (prepared.html_prepared, prepared.text_from_rendered_html) == (True, False)
    assert (after.html_prepared, after.text_from_rendered_html) == (False, True)


# --- Input that used to take seconds or fail ----------------------------------------------------------------


def test_a_link_with_a_long_run_of_spaces_is_processed_in_linear_time(path):
    html = '<p><a href="https://example.com/' + " " * 50_000 + 'x">Shop</a></p>'
    started = time.monotonic()
    assert check_source(TemplateSource(channel="email", subject="s", html_body=html)) == {}
    message, maker = render(html, path=path)
    assert message.text == "Shop (https://t.example/c/0)"
    assert maker.calls == [("https://example.com/" + " " * 50_000 + "x", 0)]
    assert html_to_text(html).startswith("Shop (https://example.com/")
    assert time.monotonic() - started < 1  # 20,000 spaces took 2 s per pass before


MARKED_SECTIONS = ["<![foo[ x ]]>", "<![ bad name [ x ]]>", "<![if !mso]>", "<![endif]>", "<![CDATA[ x ]]>", "<![\n]>"]


@pytest.mark.parametrize("section", MARKED_SECTIONS)
def test_marked_sections_html_parser_refuses_are_read_like_browsers_do(section, path):
    html = f'<html><body><p>Hi</p>{section}<a href="https://example.com/a">A</a></body></html>'
    assert check_source(TemplateSource(channel="email", subject="s", html_body=html)) == {}
    message, maker = render(html, path=path)
    assert maker.calls == [("https://example.com/a", 0)]
    assert message.html.endswith('margin:0;padding:0" /></body></html>')
    assert "A (https://t.example/c/0)" in message.text
    assert body_close_offset(html) == html.index("</body>")


def test_large_rendered_html_is_parsed_in_pieces_with_the_same_result():
    # Under a render budget the parser is fed in chunks (checking the deadline between them).
    rows = "".join(
        f'<tr><td class="c{n}">Item &amp; {n}</td><td><a href="https://example.com/p/{n}?a=1&amp;b=2">'
        f"Product {n}</a></td></tr>\n"
        for n in range(2000)
    )
    rendered = f"<html><body><table>{rows}</table></body></html>"
    assert len(rendered) > 3 * 64 * 1024
    whole_html = track_html(rendered, Maker().tracking()).html
    whole_text = html_to_text(rendered)
    with budget(RenderLimits()):
        assert track_html(rendered, Maker().tracking()).html == whole_html
        assert html_to_text(rendered) == whole_text
    with budget(RenderLimits(timeout=0)), pytest.raises(LimitExceeded):
        html_to_text(rendered)


def test_html_the_parser_cannot_read_still_gives_a_text_part():
    # The parser reads everything known to break it (marked sections above); if it ever fails,
    # the text part is the HTML without its tags rather than an error for every message.
    assert tracking_html._without_tags("<p>A &amp; B</p>\n<br>C <b>unclosed") == "A & B C unclosed"


# --- Jinja tags are found by Jinja's own lexer -------------------------------------------------------------


def test_jinja_tags_are_located_exactly_where_jinja_reads_them():
    source = (
        "<p>a  {%- if x -%}  b</p>\r\n"
        "{{ {'k': '}}'}['k'] }}{# a '#} #}\r"
        "<a href=\"{{ '%}' ~ u }}\">{{- y }}</a>\r\n{%+ endif +%}"
    )
    spans = tracking_html.jinja_spans(source)
    assert [(source[span.start : span.end], span.kind) for span in spans] == [
        ("{%- if x -%}", "{%"),
        ("{{ {'k': '}}'}['k'] }}", "{{"),
        ("{# a '#}", "{#"),
        ("{{ '%}' ~ u }}", "{{"),
        ("{{- y }}", "{{"),
        ("{%+ endif +%}", "{%"),
    ]


def test_links_after_windows_line_breaks_are_rewritten_in_place(path):
    html = (
        "<html>\r\n<body>\r\n{% if vip %}\r\n<p>VIP</p>\r\n{% endif %}\r"
        '<p><a href="https://example.com/{{ slug ~ \'">\' }}">Shop</a></p>\r\n</body>\r\n</html>\r\n'
    )
    message, maker = render(html, {"vip": True, "slug": "s"}, path=path)
    assert maker.calls == [('https://example.com/s">', 0)]
    assert '\n<p><a href="https://t.example/c/0">Shop</a></p>\n<img src=' in message.html
    assert message.text == "VIP\n\nShop (https://t.example/c/0)"
    compiled = prepare(TemplateSource(channel="email", subject="s", html_body=html), organization_id="t", tracked=True)
    assert (compiled.html_prepared, compiled.text_from_rendered_html) == (True, False)
    assert body_close_offset(html) == html.index("</body>")


def test_whitespace_control_next_to_a_link_keeps_both_paths_equal(path):
    html = '<p>Hi  {%- if x -%}  <a href="https://example.com/{{ x }}">go</a>  {%- endif %} there</p>'
    message, maker = render(html, {"x": "y"}, path=path)
    assert message.html.startswith('<p>Hi<a href="https://t.example/c/0">go</a> there</p>')
    assert message.text == "Higo (https://t.example/c/0) there"
    assert maker.calls == [("https://example.com/y", 0)]
