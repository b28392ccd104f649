"""Render a plain-language rubric (`core.explain.Explanation`) as Markdown or as an HTML page.

The HTML page is self-contained (its style inline, no scripts, nothing fetched): the CLI writes
it to a file and the web server serves the same bytes at ``/rubrics/{id}``. Every text from the
rubric is escaped. Pure: data in, text out.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape
from typing import Final, Literal

from .explain import CriterionText, Explanation

Format = Literal["md", "html"]
FORMATS: Final = ("md", "html")


def render(explanation: Explanation, fmt: Format) -> str:
    """`explanation` as Markdown (``md``) or a whole HTML document (``html``)."""
    return markdown(explanation) if fmt == "md" else html_page(explanation)


def _tags(c: CriterionText) -> list[str]:
    tags = []
    if c.critical:
        tags.append("critical")
    elif c.points:
        points = int(c.points) if float(c.points).is_integer() else c.points
        tags.append(f"{points} point{'' if points == 1 else 's'}")
    if c.observed:
        tags.append("judged by an assessor")
    return tags


def _sections(e: Explanation) -> list[tuple[str, tuple[CriterionText, ...]]]:
    sections = [(f"{comp.code}: {comp.name}", comp.criteria) for comp in e.competencies]
    if e.other:
        sections.append(("Other criteria" if e.competencies else "Criteria", e.other))
    return [(title, criteria) for title, criteria in sections if criteria]


# ==================================================================================== Markdown


def _md(text: str) -> str:
    """Text with Markdown's active characters escaped (titles are the trainer's own words)."""
    return "".join(f"\\{ch}" if ch in "\\`*_[]<>#|" else ch for ch in text)


def markdown(e: Explanation) -> str:
    lines = [f"# {_md(e.title)}", "",
             f"Rubric `{e.rubric}`, version {e.version} · {_md(e.scenario_title)}", ""]  # fmt: skip
    if e.description:
        lines += [_md(" ".join(e.description.split())), ""]
    lines += ["## How you pass", ""]
    lines += [f"- {_md(rule)}" for rule in e.pass_rule]
    lines.append("")
    for title, criteria in _sections(e):
        lines += [f"## {_md(title)}", ""]
        for c in criteria:
            tags = _tags(c)
            suffix = f" ({', '.join(tags)})" if tags else ""
            lines.append(f"- **{_md(c.title)}**{suffix}  ")
            lines.append(f"  {_md(c.rule)}")
        lines.append("")
    return "\n".join(lines)


# ======================================================================================== HTML

_STYLE: Final = """
body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;
color:#1b1f23}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem}
.meta{color:#57606a;font-size:.9rem}
ul.criteria{list-style:none;padding:0}
li.criterion{border-left:4px solid #d0d7de;padding:.4rem .8rem;margin:.6rem 0}
li.critical{border-left-color:#cf222e}
.tag{font-size:.8rem;border:1px solid #d0d7de;border-radius:1rem;padding:0 .5rem;
margin-left:.4rem;white-space:nowrap}
.critical .tag.critical{border-color:#cf222e;color:#cf222e}
.rule{margin:.2rem 0 0}
"""

STYLE_HASH: Final = "sha256-" + base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
"""The CSP source of the page's inline style (``style-src 'sha256-...'``): a server serving the
page allows exactly this style and nothing else."""


def html_page(e: Explanation) -> str:
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(e.title)}</title><style>{_STYLE}</style></head>",
        f'<body><main class="rubric" data-rubric="{escape(e.rubric)}"'
        f' data-version="{e.version}">',
        f"<h1>{escape(e.title)}</h1>",
        f'<p class="meta">Rubric <code>{escape(e.rubric)}</code>, version {e.version}'
        f" · {escape(e.scenario_title)}</p>",
    ]
    if e.description:
        parts.append(f'<p class="description">{escape(" ".join(e.description.split()))}</p>')
    parts.append('<section class="pass-rule"><h2>How you pass</h2><ul>')
    parts += [f"<li>{escape(rule)}</li>" for rule in e.pass_rule]
    parts.append("</ul></section>")
    for title, criteria in _sections(e):
        parts.append(f'<section class="competency"><h2>{escape(title)}</h2><ul class="criteria">')
        parts += [_criterion_html(c) for c in criteria]
        parts.append("</ul></section>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _criterion_html(c: CriterionText) -> str:
    classes = "criterion critical" if c.critical else "criterion"
    tags = "".join(
        f'<span class="tag{" critical" if tag == "critical" else ""}">{escape(tag)}</span>'
        for tag in _tags(c)
    )
    return (
        f'<li class="{classes}" data-criterion="{escape(c.id)}">'
        f"<strong>{escape(c.title)}</strong>{tags}"
        f'<p class="rule">{escape(c.rule)}</p></li>'
    )
