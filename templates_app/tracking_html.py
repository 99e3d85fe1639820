"""HTML post-processing for sending: click tracking, the open pixel, the text alternative.

The work is done once per template, on its *source*, when it is compiled
(see ``rendering``): every trackable ``href`` becomes a Jinja filter block
that hands the rendered original URL to the click-URL maker, markers for the
open pixel and the hidden preheader are placed next to ``</body>`` and
``<body>``, and the text alternative is derived as a Jinja template of its
own. Rendering a message is then Jinja rendering only.

Jinja tags, found by Jinja's own lexer, are masked before the HTML is parsed,
so quotes or ``>`` inside ``{{ ... }}`` cannot confuse the parser, and
positions in the masked text are positions in the source.

The HTML parser is Python's ``html.parser``, a tokenizer: it reports where each
tag starts and keeps the source's order. Both matter here. A link is rewritten
at its exact offset in the source, and the text alternative keeps every
``{% ... %}`` where it stands, so loops and conditions wrap the same text.
Tree-building parsers (lexbor, libxml2) give no source offsets and move text
the HTML rules place elsewhere: ``{% for %}`` between ``<table>`` and ``<tr>``
ends up before the table, outside the loop it opens. Building the text from
each rendered message's tree instead costs more per message than the whole
send path's budget (``bench/templates_render.py``).

Link rules:

* rewritten: ``<a href>`` and ``<area href>`` whose value is, or renders to,
  an ``http://`` or ``https://`` URL;
* left alone: ``mailto:``, ``tel:``, ``sms:`` and other schemes, ``#anchors``,
  relative links (an email has no base URL to resolve them against, so there is
  nothing safe to redirect to), links marked ``data-notrack``, and the
  unsubscribe link (any ``href`` that uses ``unsubscribe_url``, or renders to the
  message's unsubscribe URL);
* a click-URL maker receives the rendered URL and its index in the message's
  list of tracked links; the same URL twice gets one index. The list is
  returned with the message so the tracking endpoint redirects only to URLs
  that were in it.

Links inside HTML comments (Outlook conditional comments included) are not
seen by the parser and stay untracked.

The pluggable interface the campaign engine passes in is ``LinkTracking``:
``click_url(original_url, link_index) -> str`` and ``open_pixel_url() -> str``.
"""

from __future__ import annotations

import bisect
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser

from jinja2 import Environment, nodes
from jinja2.exceptions import TemplateSyntaxError

from templates_app.sandbox import LimitExceeded, current_budget

TRACK_FILTER = "_cc_track_link"
PIXEL_FILTER = "_cc_open_pixel"
PREHEADER_FILTER = "_cc_preheader"

PIXEL_MARKER = "{{ 0|" + PIXEL_FILTER + " }}"
PREHEADER_MARKER = "{{ 0|" + PREHEADER_FILTER + " }}"

_MASK = "\ue000"
_FEED_CHUNK = 64 * 1024
_SPACE = " \t\n\r\f"
_TRACKABLE = ("http://", "https://")
_NEVER_TRACKED = ("mailto:", "tel:", "sms:", "javascript:", "data:", "cid:")
_LINK_TAGS = frozenset({"a", "area"})
_SKIPPED_CONTENT = frozenset({"head", "style", "script", "title", "template", "noscript"})
_PARAGRAPHS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "ul", "ol", "pre", "dl"})
_BLOCKS = frozenset(
    {"div", "tr", "section", "header", "footer", "article", "aside", "nav", "center", "address", "dt", "dd", "main"}
)
_CELLS = frozenset({"td", "th"})
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
)

# Parsing a value only; nothing is rendered with this environment.
_PARSE_ONLY = Environment()  # noqa: S701 - parses values, never renders


@dataclass(frozen=True)
class LinkTracking:
    """Signed URL makers from the tracking side, for one message."""

    click_url: Callable[[str, int], str]
    open_pixel_url: Callable[[], str]


class HtmlPrepareError(Exception):
    """The source cannot be prepared ahead of time; process the rendered HTML instead."""


def pixel_html(url: str) -> str:
    return (
        f'<img src="{html.escape(url, quote=True)}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0" />'
    )


def preheader_html(text: str) -> str:
    """The hidden preview text inbox lists show next to the subject."""
    return (
        '<div style="display:none;max-height:0;max-width:0;overflow:hidden;mso-hide:all;'
        f'font-size:1px;line-height:1px;opacity:0;color:transparent">{html.escape(text, quote=False)}</div>'
    )


# --- Jinja masking ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    kind: str  # "{{", "{%" or "{#"


_BEGIN = {"variable_begin": "{{", "block_begin": "{%", "comment_begin": "{#"}
_END = frozenset({"variable_end", "block_end", "comment_end"})
_NEWLINES = re.compile(r"\r\n?")


def jinja_spans(source: str) -> list[_Span]:
    """Where the Jinja tags are in `source`, as Jinja's own lexer reads them.

    The lexer yields token values, not offsets: they are found in the source in order.
    What whitespace control strips from the text before a tag is left out of the
    values, so whitespace may lie between one token and the next, nothing else.
    """
    # The lexer reads "\r\n" and "\r" as "\n": it runs on the text with them replaced,
    # and offsets in that text are moved back past the "\r" of every "\r\n" before them.
    text = _NEWLINES.sub("\n", source) if "\r" in source else source
    spans: list[_Span] = []
    position, start, kind = 0, 0, ""
    try:
        for _, category, value in _PARSE_ONLY.lex(text):
            if not text.startswith(value, position):
                skipped = position
                while position < len(text) and text[position].isspace():
                    position += 1
                if not text.startswith(value, position) or position == skipped:
                    raise HtmlPrepareError("the template's tags could not be located")
            if category in _BEGIN:
                start, kind = position, _BEGIN[category]
            elif category == "raw_begin":
                raise HtmlPrepareError("raw blocks are processed after rendering")
            position += len(value)
            if category in _END:
                # A "-%}" token also holds the whitespace it strips after the tag; that is not the tag.
                spans.append(_Span(start, position - (len(value) - len(value.rstrip())), kind))
    except TemplateSyntaxError as exc:
        raise HtmlPrepareError(f"the template does not parse: {exc.message}") from exc
    if text is not source:
        spans = _in_source(spans, source)
    return spans


def _in_source(spans: list[_Span], source: str) -> list[_Span]:
    """Spans found in `source` with its newlines made "\n", moved back to `source`."""
    shifts: list[int] = []  # where each "\r\n" stands in the text as one "\n"
    for match in _NEWLINES.finditer(source):
        if match.end() - match.start() == 2:
            shifts.append(match.start() - len(shifts))

    def moved(offset: int) -> int:
        return offset + bisect.bisect_left(shifts, offset)

    return [_Span(moved(span.start), moved(span.end), span.kind) for span in spans]


def _mask(source: str, spans: list[_Span]) -> str:
    if not spans:
        return source
    parts: list[str] = []
    last = 0
    for span in spans:
        parts.append(source[last : span.start])
        parts.append(_MASK * (span.end - span.start))
        last = span.end
    parts.append(source[last:])
    return "".join(parts)


# --- Parsing with positions -------------------------------------------------------------


@dataclass(frozen=True)
class _Attribute:
    name: str
    value_start: int  # offsets in the document
    value_end: int
    quote: str | None  # '"', "'", "" (unquoted) or None (no value)


def _attributes(tag_text: str, offset: int) -> list[_Attribute]:
    """Attribute names and value positions in a start tag's text, as the HTML tokenizer reads them."""
    found: list[_Attribute] = []
    n = len(tag_text)
    i = 1
    while i < n and tag_text[i] not in _SPACE and tag_text[i] not in "/>":
        i += 1
    while i < n:
        while i < n and (tag_text[i] in _SPACE or tag_text[i] == "/"):
            i += 1
        if i >= n or tag_text[i] == ">":
            break
        name_start = i
        i += 1
        while i < n and tag_text[i] not in _SPACE and tag_text[i] not in "/>=":
            i += 1
        name = tag_text[name_start:i].lower()
        j = i
        while j < n and tag_text[j] in _SPACE:
            j += 1
        if j < n and tag_text[j] == "=":
            j += 1
            while j < n and tag_text[j] in _SPACE:
                j += 1
            if j < n and tag_text[j] in "\"'":
                quote = tag_text[j]
                close = tag_text.find(quote, j + 1)
                if close == -1:
                    break
                found.append(_Attribute(name, offset + j + 1, offset + close, quote))
                i = close + 1
            else:
                k = j
                while k < n and tag_text[k] not in _SPACE and tag_text[k] != ">":
                    k += 1
                found.append(_Attribute(name, offset + j, offset + k, ""))
                i = k
        else:
            found.append(_Attribute(name, offset + i, offset + i, None))
    return found


class _PositionedParser(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=False)
        self.text = text
        self._line_starts = [0]
        position = text.find("\n")
        while position != -1:
            self._line_starts.append(position + 1)
            position = text.find("\n", position + 1)

    def position(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def run(self) -> None:
        """Parse the whole text; raises HtmlPrepareError when the parser cannot.

        While a message is rendered (under a budget), the text is fed in chunks and
        the deadline is checked between them: rendered HTML can be large.
        """
        current = current_budget()
        try:
            if current is None:
                self.feed(self.text)
            else:
                for start in range(0, len(self.text), _FEED_CHUNK):
                    current.tick()
                    self.feed(self.text[start : start + _FEED_CHUNK])
            self.close()
        except LimitExceeded:
            raise
        except Exception as exc:
            raise HtmlPrepareError(f"the HTML could not be parsed: {exc}") from exc

    def parse_marked_section(self, i: int, report: int = 1) -> int:
        # html.parser raises AssertionError on "<![foo[ ... ]]>"; browsers read it as a bogus comment.
        position = self.lineno, self.offset
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            self.lineno, self.offset = position
            return self.parse_bogus_comment(i, report)

    def href_of(self, tag_start: int, attrs: list[tuple[str, str | None]]) -> _Attribute | None:
        """The href attribute of the start tag being handled, if the tokenizers agree on its value."""
        tag_text = self.get_starttag_text() or ""
        for attribute in _attributes(tag_text, tag_start):
            if attribute.name == "href":
                parsed = next((value for name, value in attrs if name == "href"), None)
                raw = self.text[attribute.value_start : attribute.value_end]
                if attribute.quote is None or parsed is None or html.unescape(raw) != parsed:
                    return None
                return attribute
        return None


@dataclass
class _Link:
    href: _Attribute
    notrack: bool


class _LinkScanner(_PositionedParser):
    """Finds link hrefs and where <body> opens and closes."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.links: list[_Link] = []
        self.body_open_end: int | None = None
        self.body_close_start: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        start = self.position()
        if tag in _LINK_TAGS:
            href = self.href_of(start, attrs)
            if href is not None:
                notrack = any(name == "data-notrack" for name, _ in attrs)
                self.links.append(_Link(href, notrack))
        elif tag == "body" and self.body_open_end is None:
            self.body_open_end = start + len(self.get_starttag_text() or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.body_close_start = self.position()


# --- Link decisions ---------------------------------------------------------------------

_TRACK = "track"
_KEEP = "keep"  # a URL shown as is
_NONE = "none"  # no URL to show (#anchor, empty)
_OPAQUE = "opaque"  # Jinja that does not stand alone inside the value: leave it where it is


def _link_action(masked_value: str, source_value: str, *, notrack: bool) -> str:
    value = masked_value.strip()
    if not value or value.startswith("#"):
        return _NONE
    prefix = value.split(_MASK, 1)[0].lower()
    if _MASK not in value:
        if notrack or not prefix.startswith(_TRACKABLE):
            return _KEEP
        return _TRACK
    try:
        ast = _PARSE_ONLY.parse(source_value)
    except TemplateSyntaxError:
        return _OPAQUE
    if notrack or prefix.startswith(_NEVER_TRACKED):
        return _KEEP
    if prefix and not prefix.startswith(_TRACKABLE) and not any(scheme.startswith(prefix) for scheme in _TRACKABLE):
        return _KEEP
    if any(node.name == "unsubscribe_url" for node in ast.find_all(nodes.Name)):
        return _KEEP
    # Decided when rendered: only http(s) URLs other than the unsubscribe URL are tracked.
    return _TRACK


# --- HTML template preparation -----------------------------------------------------------


def prepare_html_source(source: str, *, track_links: bool, open_pixel: bool, preheader: bool) -> str:
    """The HTML template source with tracking filters and pixel/preheader markers in place.

    Raises HtmlPrepareError when the source cannot be prepared safely ahead of time.
    """
    if not (track_links or open_pixel or preheader):
        return source
    masked = _mask(source, jinja_spans(source))
    scanner = _LinkScanner(masked)
    scanner.run()
    edits: list[tuple[int, int, str]] = []
    if track_links:
        for link in scanner.links:
            start, end = link.href.value_start, link.href.value_end
            original = source[start:end]
            if _link_action(masked[start:end], original, notrack=link.notrack) != _TRACK:
                continue
            wrapped = "{% filter " + TRACK_FILTER + " %}" + original + "{% endfilter %}"
            edits.append((start, end, wrapped if link.href.quote else f'"{wrapped}"'))
    if preheader and scanner.body_open_end is not None:
        edits.append((scanner.body_open_end, scanner.body_open_end, PREHEADER_MARKER))
    if open_pixel and scanner.body_close_start is not None:
        edits.append((scanner.body_close_start, scanner.body_close_start, PIXEL_MARKER))
    return _apply(source, edits)


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    if not edits:
        return text
    parts: list[str] = []
    last = 0
    for start, end, replacement in sorted(edits, key=lambda edit: (edit[0], edit[1])):
        parts.append(text[last:start])
        parts.append(replacement)
        last = end
    parts.append(text[last:])
    return "".join(parts)


def body_close_offset(source: str) -> int | None:
    """Where the last </body> of an HTML template source starts, or None (also when it cannot be parsed)."""
    try:
        masked = _mask(source, jinja_spans(source))
    except HtmlPrepareError:
        masked = source
    scanner = _LinkScanner(masked)
    try:
        scanner.run()
    except HtmlPrepareError:
        return None
    return scanner.body_close_start


# --- Rendered HTML processing (when the source could not be prepared) ----------------------------


def finish_rendered_html(
    rendered: str,
    *,
    track: Callable[[str], str | None] | None,
    pixel: str,
    preheader: str,
) -> str:
    """Track links, insert the preheader and the pixel into HTML that is already rendered.

    `track(url)` returns the tracked URL, or None to leave the link as it is. HTML
    the parser cannot read keeps its links as they are, with the preheader put first
    and the pixel last.
    """
    scanner = _LinkScanner(rendered)
    try:
        scanner.run()
    except HtmlPrepareError:
        return f"{preheader}{rendered}{pixel}"
    edits: list[tuple[int, int, str]] = []
    if track is not None:
        for link in scanner.links:
            start, end = link.href.value_start, link.href.value_end
            raw = rendered[start:end]
            if _link_action(raw, raw, notrack=link.notrack) != _TRACK:
                continue
            tracked = track(html.unescape(raw).strip())
            if tracked is not None:
                value = html.escape(tracked, quote=True)
                edits.append((start, end, value if link.href.quote else f'"{value}"'))
    if preheader:
        at = scanner.body_open_end or 0
        edits.append((at, at, preheader))
    if pixel:
        at = scanner.body_close_start if scanner.body_close_start is not None else len(rendered)
        edits.append((at, at, pixel))
    return _apply(rendered, edits)


@dataclass(frozen=True)
class TrackedHtml:
    html: str
    links: tuple[str, ...]


def track_html(rendered: str, tracking: LinkTracking) -> TrackedHtml:
    """Click tracking and the open pixel for HTML that did not come from a template."""
    links: list[str] = []
    tracked: dict[str, str] = {}

    def track(url: str) -> str | None:
        if not url.lower().startswith(_TRACKABLE):
            return None
        if url not in tracked:
            tracked[url] = tracking.click_url(url, len(links))
            links.append(url)
        return tracked[url]

    result = finish_rendered_html(rendered, track=track, pixel=pixel_html(tracking.open_pixel_url()), preheader="")
    return TrackedHtml(html=result, links=tuple(links))


# --- Text alternative --------------------------------------------------------------------------


def _is_hidden(attrs: list[tuple[str, str | None]]) -> bool:
    for name, value in attrs:
        if name == "hidden" or (name == "style" and "display:none" in "".join((value or "").lower().split())):
            return True
    return False


@dataclass
class _OpenLink:
    url: list[tuple[str, str]] | None
    static_url: str | None
    pieces: list[tuple[str, str]] = field(default_factory=list)


class _TextBuilder(_PositionedParser):
    """Turns HTML (optionally a Jinja template) into text pieces.

    Pieces: ("t", text to collapse), ("r", text kept as is), ("u", a URL, kept
    exactly as is), ("j", Jinja source), ("n", "1"/"2" line breaks). In a template,
    every ``{% ... %}`` tag is kept in document order wherever it stands, so the
    text template has the same structure (blocks, loops, conditions) as the HTML one.
    """

    def __init__(
        self,
        source: str,
        *,
        template: bool,
        track_links: bool,
        track: Callable[[str], str | None] | None = None,
    ) -> None:
        self.source = source
        self.template = template
        self.spans = jinja_spans(source) if template else []
        self.track_links = track_links
        self.track = track
        super().__init__(_mask(source, self.spans))
        self.next_span = 0
        self.skipping = 0
        self.hidden: list[str] = []  # open elements inside one styled display:none (preheaders and the like)
        self.pieces: list[tuple[str, str]] = []
        self.open_links: list[_OpenLink] = []

    # Output ------------------------------------------------------------------------------

    def _skipping(self) -> bool:
        return bool(self.skipping or self.hidden)

    def _out(self, kind: str, value: str) -> None:
        (self.open_links[-1].pieces if self.open_links else self.pieces).append((kind, value))

    def _flush_statements(self, until: int) -> None:
        while self.next_span < len(self.spans) and self.spans[self.next_span].start < until:
            span = self.spans[self.next_span]
            if span.kind == "{%":
                self._out("j", self.source[span.start : span.end])
            self.next_span += 1

    def _text_between(self, start: int, end: int) -> list[tuple[str, str]]:
        """Source text with its Jinja tags, the tags consumed."""
        pieces: list[tuple[str, str]] = []
        position = start
        while self.next_span < len(self.spans) and self.spans[self.next_span].start < end:
            span = self.spans[self.next_span]
            if span.start > position:
                pieces.append(("t", self.source[position : span.start]))
            pieces.append(("j", self.source[span.start : span.end]))
            position = span.end
            self.next_span += 1
        if position < end:
            pieces.append(("t", self.source[position:end]))
        return pieces

    # Parser callbacks ----------------------------------------------------------------------------

    def handle_data(self, data: str) -> None:
        start = self.position()
        end = start + len(data)
        self._flush_statements(start)
        if self._skipping():
            self._flush_statements(end)
            return
        for kind, value in self._text_between(start, end):
            self._out(kind, value)

    def handle_entityref(self, name: str) -> None:
        self._flush_statements(self.position())
        if not self._skipping():
            char = html.unescape(f"&{name};")
            self._out("t", f"&{name}" if char == f"&{name};" else char)

    def handle_charref(self, name: str) -> None:
        self._flush_statements(self.position())
        if not self._skipping():
            self._out("t", html.unescape(f"&#{name};"))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        start = self.position()
        end = start + len(self.get_starttag_text() or "")
        link = self._start_link(start, attrs) if tag in _LINK_TAGS and not self._skipping() else None
        self._flush_statements(end)
        if tag == "body":
            self.skipping = 0
        elif tag in _SKIPPED_CONTENT:
            self.skipping += 1
        elif tag not in _VOID and (self.hidden or _is_hidden(attrs)):
            self.hidden.append(tag)
        if self._skipping():
            return
        if tag in _PARAGRAPHS:
            self._out("n", "2")
        elif tag in _BLOCKS:
            self._out("n", "1")
        elif tag == "li":
            self._out("n", "1")
            self._out("r", "- ")
        elif tag == "br":
            self._out("r", "\n")
        elif tag == "hr":
            self._out("n", "1")
            self._out("r", "-" * 20)
            self._out("n", "1")
        if link is not None:
            self.open_links.append(link)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in _LINK_TAGS:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        self._flush_statements(self.position())
        if tag in _SKIPPED_CONTENT:
            self.skipping = max(self.skipping - 1, 0)
            return
        if self.hidden and tag in self.hidden:
            while self.hidden.pop() != tag:
                pass
            return
        if self._skipping():
            return
        if tag in _LINK_TAGS and self.open_links:
            self._end_link(self.open_links.pop())
        elif tag in _PARAGRAPHS:
            self._out("n", "2")
        elif tag in _BLOCKS or tag == "li":
            self._out("n", "1")
        elif tag in _CELLS:
            self._out("t", " ")

    def close(self) -> None:
        super().close()
        while self.open_links:
            self._end_link(self.open_links.pop())
        self._flush_statements(len(self.source) + 1)

    # Links -------------------------------------------------------------------------------------

    def _start_link(self, tag_start: int, attrs: list[tuple[str, str | None]]) -> _OpenLink:
        href = self.href_of(tag_start, attrs)
        if href is None:
            return _OpenLink(url=None, static_url=None)
        start, end = href.value_start, href.value_end
        source_value = self.source[start:end]
        notrack = any(name == "data-notrack" for name, _ in attrs)
        action = _link_action(self.text[start:end], source_value, notrack=notrack)
        if action in (_NONE, _OPAQUE):
            return _OpenLink(url=None, static_url=None)
        self._flush_statements(start)
        url: list[tuple[str, str]] = []
        for kind, value in self._text_between(start, end):
            url.append(("u", html.unescape(value).strip()) if kind == "t" else (kind, value))
        static = None if any(kind == "j" for kind, _ in url) else "".join(value for _, value in url)
        if action == _TRACK and self.track_links:
            if self.template:
                url = [("j", "{% filter " + TRACK_FILTER + " %}"), *url, ("j", "{% endfilter %}")]
            elif self.track is not None and static is not None:
                tracked = self.track(static)
                url = [("u", tracked)] if tracked is not None else url
        return _OpenLink(url=url, static_url=static)

    def _end_link(self, link: _OpenLink) -> None:
        pieces = link.pieces
        if link.url is None:
            for piece in pieces:
                self._out(*piece)
            return
        text_only = all(kind == "t" for kind, _ in pieces)
        text = " ".join("".join(value for _, value in pieces).split()) if text_only else None
        if text_only and (not text or text == link.static_url):
            for piece in link.url:
                self._out(*piece)
            return
        for piece in pieces:
            self._out(*piece)
        self._out("t", " (")
        for piece in link.url:
            self._out(*piece)
        self._out("r", ")")


# Block boundaries are written as marker characters. Where only HTML lies between them they
# are resolved when the text template is built; next to Jinja tags they are resolved after
# rendering, so breaks from neighbouring blocks (and loop iterations) merge instead of adding up.
_LINE_BREAK = "\x1e"
_PARAGRAPH_BREAK = "\x1d"
# Matches start where a run of spaces starts: starting inside one as well would make the
# search quadratic in the run's length (20,000 spaces in a URL took 2 s).
_GAP = re.compile(r"(?<![^\S\n])[^\S\n]*[\n\x1d\x1e][\s\x1d\x1e]*")
_SPACES = re.compile(" {2,}")


def _resolve_gap(match: re.Match) -> str:
    gap = match.group()
    level = 2 if _PARAGRAPH_BREAK in gap else 1 if _LINE_BREAK in gap else 0
    return "\n" * min(max(gap.count("\n"), level), 2)


def _resolve_static(text: str) -> str:
    return _SPACES.sub(" ", _GAP.sub(_resolve_gap, text))


def _piece_text(kind: str, value: str) -> str:
    if kind == "n":
        return _PARAGRAPH_BREAK if value == "2" else _LINE_BREAK
    if kind == "t":
        collapsed = " ".join(value.split())
        if value[:1].isspace():
            collapsed = " " + collapsed
        if value[-1:].isspace() and collapsed.strip():
            collapsed += " "
        return collapsed
    return value


def _join_pieces(pieces: list[tuple[str, str]], *, template: bool) -> str:
    # URLs and Jinja tags end a run of text: the spaces in a run are collapsed, theirs are not
    # (a URL must stay the URL that is tracked in the HTML).
    parts: list[str] = []
    run: list[str] = []

    def close_run() -> None:
        text = "".join(run)
        run.clear()
        if not template:
            parts.append(_resolve_static(text))
            return
        head, tail = len(text) - len(text.lstrip()), len(text.rstrip())
        if head < tail:
            text = text[:head] + _resolve_static(text[head:tail]) + text[tail:]
        parts.append(_escape_jinja(text))

    for kind, value in pieces:
        if kind == "j":
            close_run()
            parts.append(value)
        elif kind == "u":
            close_run()
            parts.append(_escape_jinja(value) if template else value)
        else:
            run.append(_piece_text(kind, value))
    close_run()
    return "".join(parts)


def _escape_jinja(text: str) -> str:
    return text.replace("{", "{{ '{' }}")


def normalize_text(text: str) -> str:
    """Resolve the block breaks left in a rendered text alternative."""
    # str.find rather than a regular expression: this runs once per message.
    paragraph, line = text.find(_PARAGRAPH_BREAK), text.find(_LINE_BREAK)
    if paragraph < 0 and line < 0:
        return text.strip()
    out: list[str] = []
    position, n = 0, len(text)
    while paragraph >= 0 or line >= 0:
        marker = line if paragraph < 0 else paragraph if line < 0 else min(paragraph, line)
        before = text[position:marker]
        kept = before.rstrip()
        end = marker + 1
        while end < n and text[end].isspace():
            end += 1
        gap = before[len(kept) :] + text[marker:end]
        level = 2 if _PARAGRAPH_BREAK in gap else 1
        out.append(kept)
        out.append("\n" * min(max(gap.count("\n"), level), 2))
        position = end
        if 0 <= paragraph < position:
            paragraph = text.find(_PARAGRAPH_BREAK, position)
        if 0 <= line < position:
            line = text.find(_LINE_BREAK, position)
    out.append(text[position:])
    return "".join(out).strip()


def text_template_source(source: str, *, track_links: bool) -> str:
    """A Jinja template for the text alternative of an HTML template source.

    Render it without autoescape and pass the result through `normalize_text`.
    Raises HtmlPrepareError when the source cannot be converted ahead of time.
    """
    builder = _TextBuilder(source, template=True, track_links=track_links)
    builder.run()
    return _join_pieces(builder.pieces, template=True)


def html_to_text(rendered: str, *, track: Callable[[str], str | None] | None = None) -> str:
    """The text alternative of rendered HTML: links as "text (url)".

    HTML the parser cannot read gives its text with the tags left out (and no URLs).
    """
    builder = _TextBuilder(rendered, template=False, track_links=track is not None, track=track)
    try:
        builder.run()
    except HtmlPrepareError:
        return _without_tags(rendered)
    return _join_pieces(builder.pieces, template=False).strip()


def _without_tags(markup: str) -> str:
    parts: list[str] = []
    position = 0
    while True:
        start = markup.find("<", position)
        if start < 0:
            parts.append(markup[position:])
            break
        parts.append(markup[position:start])
        end = markup.find(">", start)
        if end < 0:
            break
        parts.append(" ")
        position = end + 1
    return " ".join(html.unescape("".join(parts)).split())
