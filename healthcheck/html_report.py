"""The Markdown report as one HTML page: a table of contents, severity colours, and each
finding linked to the section of the collector that raised it. No JavaScript.

The Markdown is the report as written (redacted, its untrusted text fenced); markdown-it
renders it with raw HTML off, so a log line is text in a <pre> whatever it contains.
"""

from __future__ import annotations

import html
import re
from typing import Any

from healthcheck.lazyre import lazy

SEVERITY_WORDS = {"CRIT": "crit", "WARN": "warn", "UNKNOWN": "unknown", "OK": "ok"}
_SEVERITY_TEXT = lazy(r"(?:Overall: )?(CRIT|WARN|UNKNOWN|OK)")
_SECTION_HEADING = lazy(r"([A-Za-z0-9_.-]+): (crit|warn|unknown|ok)")
_FINDING_SOURCE = lazy(r"(.*) \[([A-Za-z0-9_.-]+)\]")

STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
.layout{display:flex;gap:24px;max-width:1200px;margin:0 auto;padding:16px}
nav{flex:0 0 220px;position:sticky;top:16px;align-self:flex-start;font-size:14px}
nav ul{list-style:none;padding:0;margin:0}nav li{margin:2px 0}
main{flex:1;min-width:0;background:#fff;padding:8px 24px;border-radius:6px;
box-shadow:0 1px 3px rgba(0,0,0,.12)}
a{color:#1f5fbf;text-decoration:none}a:hover{text-decoration:underline}
pre{background:#14181f;color:#e6e6e6;padding:8px 10px;border-radius:4px;overflow-x:auto;
white-space:pre-wrap;word-break:break-all}
code{font:13px/1.4 ui-monospace,monospace}
h2{border-bottom:1px solid #dde1e6;padding-bottom:2px;margin-top:28px}
.sev{padding:0 6px;border-radius:3px;color:#fff;font-weight:600}
.sev-crit{background:#c62828}.sev-warn{background:#e08a00}
.sev-unknown{background:#6b7280}.sev-ok{background:#2e7d32}
h2.sev-crit,h2.sev-warn,h2.sev-unknown,h2.sev-ok{background:none;color:inherit;
border-left:6px solid;padding-left:8px}
h2.sev-crit{border-left-color:#c62828}h2.sev-warn{border-left-color:#e08a00}
h2.sev-unknown{border-left-color:#6b7280}h2.sev-ok{border-left-color:#2e7d32}
nav a.sev{display:inline-block;color:#fff}
table{border-collapse:collapse}td,th{border:1px solid #dde1e6;padding:2px 6px}
"""


def _slug(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


def render_html(markdown: str, title: str, status: str) -> str:
    """The page for `markdown` (the report), titled `title`, coloured for `status`."""
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    tokens = md.parse(markdown)
    taken: set[str] = set()
    toc: list[tuple[str, str, str | None]] = []  # (id, text, severity)
    sections: dict[str, str] = {}  # collector name -> its heading's id
    in_findings = False
    item_depth = 0
    finding_paragraph = False
    finding_number = 0

    # First pass: heading ids, so that findings can link to sections further down.
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            text = tokens[i + 1].content
            match = _SECTION_HEADING.fullmatch(text)
            if token.tag == "h2" and match:
                anchor = f"section-{_slug(match.group(1), taken)}"
                sections.setdefault(match.group(1), anchor)
                token.attrSet("class", f"sev-{match.group(2)}")
            else:
                anchor = _slug(text, taken)
            token.attrSet("id", anchor)
            if token.tag == "h2":
                toc.append((anchor, text, match.group(2) if match else None))

    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h2":
            in_findings = tokens[i + 1].content == "Findings"
        elif token.type == "list_item_open":
            item_depth += 1
            if in_findings and item_depth == 1:
                finding_number += 1
                token.attrSet("id", f"finding-{finding_number}")
                finding_paragraph = True
        elif token.type == "list_item_close":
            item_depth -= 1
        elif token.type == "inline" and token.children:
            _colour_severities(token.children)
            if finding_paragraph:
                finding_paragraph = False
                _link_source(token, sections, Token)

    body = md.renderer.render(tokens, md.options, {})
    nav = "".join(
        f'<li><a href="#{anchor}"'
        + (f' class="sev sev-{severity}"' if severity else "")
        + f">{html.escape(text)}</a></li>"
        for anchor, text, severity in toc
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="refresh" content="300">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f'<body class="status-{html.escape(status)}"><div class="layout">'
        f'<nav aria-label="Contents"><strong>Contents</strong><ul>{nav}</ul></nav>'
        f"<main>{body}</main></div></body></html>\n"
    )


def _colour_severities(children: list[Any]) -> None:
    """**CRIT** (and **Overall: CRIT**) as a coloured badge."""
    for i, child in enumerate(children[:-2]):
        if child.type != "strong_open":
            continue
        inner, close = children[i + 1], children[i + 2]
        match = _SEVERITY_TEXT.fullmatch(inner.content) if inner.type == "text" else None
        if match and close.type == "strong_close":
            child.attrSet("class", f"sev sev-{SEVERITY_WORDS[match.group(1)]}")


def _link_source(inline: Any, sections: dict[str, str], token_class: Any) -> None:
    """A finding's first line ends in `[collector]`: make that a link to its section."""
    children = inline.children
    last = children[-1]
    match = _FINDING_SOURCE.fullmatch(last.content) if last.type == "text" else None
    if not match or match.group(2) not in sections:
        return
    name = match.group(2)
    link_open = token_class("link_open", "a", 1)
    link_open.attrSet("href", f"#{sections[name]}")
    label = token_class("text", "", 0)
    label.content = f"[{name}]"
    before = token_class("text", "", 0)
    before.content = match.group(1) + " "
    children[-1:] = [before, link_open, label, token_class("link_close", "a", -1)]
