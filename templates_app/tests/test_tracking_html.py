"""Click tracking, the open pixel and the text alternative (no database)."""

import pytest

from templates_app.rendering import RenderError, TemplateSource, prepare, render_message
from templates_app.tracking_html import LinkTracking, html_to_text, track_html

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


def render(html_body: str, context: dict | None = None, *, text_body: str = "", maker: Maker | None = None):
    maker = maker or Maker()
    source = TemplateSource(channel="email", subject="s", html_body=html_body, text_body=text_body)
    context = {"unsubscribe_url": "https://cc.example/u/tok", **(context or {})}
    return render_message(source, context, organization_id="tracking-tests", tracking=maker.tracking()), maker


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
def test_links_that_must_not_be_tracked_are_left_exactly_as_rendered(link):
    context = {"contact": {"email": "ann@example.com"}}
    untracked = render_message(
        TemplateSource(channel="email", subject="s", html_body=f"<body>{link}</body>"),
        {"unsubscribe_url": "https://cc.example/u/tok", **context},
        organization_id="tracking-tests",
    )
    message, maker = render(f"<body>{link}</body>", context)
    assert message.html.split("<img")[0] == untracked.html.replace("</body>", "")
    assert maker.calls == []
    assert message.links == ()


def test_every_other_link_is_rewritten_with_the_rendered_original_url():
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
    message, maker = render(html, context)
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


def test_the_same_url_twice_gets_one_index_and_one_signed_url():
    html = '<a href="https://example.com/x">one</a> <a href="https://example.com/x">two</a>'
    message, maker = render(html)
    assert maker.calls == [("https://example.com/x", 0)]
    assert message.html.count('href="https://t.example/c/0"') == 2
    assert message.links == ("https://example.com/x",)


def test_a_link_that_renders_to_the_unsubscribe_url_is_not_tracked():
    html = '{% set u = unsubscribe_url %}<a href="{{ u }}">Leave</a>'
    message, maker = render(html)
    assert '<a href="https://cc.example/u/tok">Leave</a>' in message.html
    assert maker.calls == []


def test_a_link_rendering_to_a_non_http_url_is_left_alone():
    message, maker = render('<a href="{{ target }}">x</a>', {"target": "mailto:a@example.com"})
    assert '<a href="mailto:a@example.com">x</a>' in message.html
    assert maker.calls == []


def test_the_open_pixel_goes_before_the_closing_body_tag_once():
    message, _ = render("<html><body><p>Hi</p></body></html>")
    assert message.html.endswith(
        '<p>Hi</p><img src="https://t.example/o/msg-1.gif" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0" /></body></html>'
    )
    assert message.html.count("<img") == 1


def test_the_open_pixel_is_appended_when_there_is_no_body_tag():
    message, _ = render("<p>Fragment</p>")
    assert message.html.startswith("<p>Fragment</p><img src=")
    assert message.html.endswith(" />")


def test_a_body_inside_a_comment_or_a_jinja_string_is_not_taken_for_the_real_one():
    message, _ = render("<body><!-- </body> -->{{ '</body>' }}<p>End</p></body>")
    assert message.html.endswith(
        '<p>End</p><img src="https://t.example/o/msg-1.gif" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0" /></body>'
    )


def test_links_inside_html_comments_are_not_rewritten():
    message, maker = render('<!-- <a href="https://example.com/hidden">x</a> --><p>x</p>')
    assert '<!-- <a href="https://example.com/hidden">x</a> -->' in message.html
    assert maker.calls == []


def test_text_alternative_shows_links_as_text_and_url():
    html = (
        "<html><head><title>T</title><style>p {color: red}</style></head><body>"
        '<h1>Hello {{ name }}</h1><p>Our <a href="https://example.com/sale">spring sale</a> starts now.</p>'
        "<ul><li>One</li><li>Two</li></ul>"
        '<p><a href="https://example.com/">https://example.com/</a> <a href="mailto:a@example.com">Mail us</a></p>'
        "</body></html>"
    )
    source = TemplateSource(channel="email", subject="s", html_body=html)
    message = render_message(source, {"name": "Ann & Bob"}, organization_id="tracking-tests")
    assert message.text == (
        "Hello Ann & Bob\n\n"
        "Our spring sale (https://example.com/sale) starts now.\n\n"
        "- One\n- Two\n\n"
        "https://example.com/ Mail us (mailto:a@example.com)"
    )


def test_text_alternative_links_are_tracked_with_the_same_signed_urls():
    message, maker = render('<p><a href="{{ url }}">Shop</a></p>', {"url": "https://example.com/s"})
    assert message.text == "Shop (https://t.example/c/0)"
    assert maker.calls == [("https://example.com/s", 0)]


def test_text_alternative_keeps_the_structure_of_loops_and_conditions():
    html = (
        "<ul>{% for p in products %}<li>{{ p.name }}</li>{% endfor %}</ul>"
        "{% if vip %}<p>VIP offer</p>{% else %}<p>Regular offer</p>{% endif %}"
    )
    source = TemplateSource(channel="email", subject="s", html_body=html)
    context = {"products": [{"name": "A"}, {"name": "B"}], "vip": True}
    message = render_message(source, context, organization_id="tracking-tests")
    assert message.text == "- A\n- B\n\nVIP offer"


def test_an_explicit_text_body_is_used_as_written():
    message, _ = render("<p>HTML</p>", text_body="Plain {{ 1 + 1 }}")
    assert message.text == "Plain 2"


def test_raw_blocks_are_tracked_after_rendering():
    html = '<body>{% raw %}<p>{{ not jinja }}</p>{% endraw %}<a href="https://example.com/r">r</a></body>'
    message, maker = render(html)
    assert (
        prepare(
            TemplateSource(channel="email", subject="s", html_body=html), organization_id="tracking-tests", tracked=True
        ).html_prepared
        is False
    )
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


def test_an_error_in_the_click_url_maker_is_raised_as_it_is():
    def broken(url, index):
        raise KeyError("signing key missing")

    source = TemplateSource(channel="email", subject="s", html_body='<a href="https://example.com">x</a>')
    with pytest.raises(KeyError):
        render_message(
            source,
            {},
            organization_id="tracking-tests",
            tracking=LinkTracking(click_url=broken, open_pixel_url=lambda: PIXEL_URL),
        )


def test_a_tracked_render_still_reports_template_errors_per_field():
    with pytest.raises(RenderError) as caught:
        render('<p>\n<a href="{{ missing }}">x</a></p>')
    assert caught.value.errors == {"html_body": ["line 2: 'missing' is undefined"]}
