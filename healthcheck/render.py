"""Markdown and JSON from a Report. Templates hold the layout; this module the escaping.

Both renderers work on the report *after* redaction; the Markdown text passes through the
redactor once more, so a template can never print a secret a collector picked up.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2

from healthcheck import __version__
from healthcheck.assets import section_template
from healthcheck.lazyre import lazy
from healthcheck.model import human_bytes
from healthcheck.redact import Redactor
from healthcheck.report import Report
from healthcheck.timestamps import readable_stamp

# The package's own folder (installed as files, as catalogue.py reads its knowledge):
# importlib.resources would cost a run its import and zipfile's, 3-5 ms.
TEMPLATE_DIR = Path(__file__).parent / "report_templates"
_RUN = lazy(r"`+|~+")
_INLINE_SPECIAL = lazy(r"([\\`*\[\]<>|])")


def fence(value: str | list[str] | tuple[str, ...], info: str = "") -> str:
    """A fenced block that nothing inside can close.

    The fence is one backtick longer than the longest backtick or tilde run in the text, so a
    log line can neither end the block nor, from inside it, forge a heading or a marker.
    """
    if isinstance(value, (list, tuple)):
        # One line each, every one kept: a trailing blank line is part of what was written.
        text = "\n".join(value)
        body = text + "\n" if value else ""
    else:
        text = str(value)
        body = text if text.endswith("\n") or not text else text + "\n"
    longest = max((len(m) for m in _RUN.findall(text)), default=0)
    marker = "`" * max(3, longest + 1)
    return f"{marker}{info}\n{body}{marker}"


def inline(value: Any) -> str:
    """Untrusted text made safe for one line of Markdown prose (a path, a name)."""
    text = " ".join(str(value).split())
    return _INLINE_SPECIAL.sub(r"\\\1", text)


_HEADING_SPECIAL = lazy(r"([\\`*_\[\]<>|&#~])")


def heading(value: Any) -> str:
    """Untrusted text (a file's name) for a heading: every character that Markdown could
    read as emphasis, an entity, a link, HTML or a closing `#` run is escaped, so the
    heading reads as the name itself."""
    text = " ".join(str(value).split())
    return _HEADING_SPECIAL.sub(r"\\\1", text)


_CODE_SPAN = lazy(r"`([^`]+)`")


def prose(value: Any, spans: re.Pattern[str] | None = None) -> str:
    """Like `inline`, but text the tool wrote between backticks (`supervisorctl update`)
    stays a code span, so a fix command reads as one and copies cleanly. `spans`: what else
    becomes a code span (`fix` passes commands and config settings)."""
    text = " ".join(str(value).split())
    out: list[str] = []
    last = 0
    for match in _CODE_SPAN.finditer(text):
        out.append(_plain(text[last : match.start()], spans))
        out.append(_code(match.group(1)))
        last = match.end()
    out.append(_plain(text[last:], spans))
    return "".join(out)


# In a fix: the commands to type and the config settings to write, as code spans.
_FIX_CODE = lazy(
    r"(?<![\w/.=-])(?:supervisorctl\s+\w+|pip3?\s+install|mkdir\s+-p|ssh-keygen|chmod\s+[+\d]"
    r"|chown\s|ls\s+-|tail\s+-|sed\s+-|apt-get\s+install|rm\s|truncate\s+-|du\s+-|nvidia-smi"
    r"|docker\s+(?:run|exec)|crontab\s+-|systemctl\s+\w+|supervisord\s+-c"
    r"|healthcheck\s+(?:run|context|diff|log|docs|cron|collectors))"
    r"[^;,()]*?(?=\s*(?:;|,\s|\.\s|\.$|\)|\s\(|$))"
    r"|\[program:[^\]\s]+\]"
    r"|(?<![\w-])[A-Za-z_]+=(?:\"[^\"]*\"|[^\s,;)]*)"
)


def fix(value: Any) -> str:
    """A finding's fix for one line of Markdown: its commands (`supervisorctl update`,
    `pip install PySide6`) and config settings (`[program:icewm]`, `autostart=true`) are
    code spans; the rest is escaped like `inline`."""
    return prose(value, _FIX_CODE)


def _plain(text: str, spans: re.Pattern[str] | None) -> str:
    if spans is None:
        return _INLINE_SPECIAL.sub(r"\\\1", text)
    out: list[str] = []
    last = 0
    for match in spans.finditer(text):
        out.append(_INLINE_SPECIAL.sub(r"\\\1", text[last : match.start()]))
        out.append(_code(match.group(0)))
        last = match.end()
    out.append(_INLINE_SPECIAL.sub(r"\\\1", text[last:]))
    return "".join(out)


def _code(code: str) -> str:
    """A code span for `code`: its content is literal; the delimiter is longer than any
    backtick run inside, padded when the content starts or ends with a backtick or blank."""
    fence_len = max((len(m) for m in re.findall(r"`+", code)), default=0) + 1
    tick = "`" * fence_len
    padded = code.startswith(("`", " ")) or code.endswith(("`", " "))
    return f"{tick} {code} {tick}" if padded else f"{tick}{code}{tick}"


def as_text(value: Any, indent: int = 0) -> str:
    """Data as indented `key: value` lines, for sections without a template of their own."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return f"{pad}{{}}"
        lines = []
        for key in value:
            item = value[key]
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:\n{as_text(item, indent + 1)}")
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return "\n".join(lines)
    if isinstance(value, list):
        if not value:
            return f"{pad}[]"
        lines = []
        for item in value:
            if isinstance(item, (dict, list)) and item:
                nested = as_text(item, indent + 1).lstrip()
                lines.append(f"{pad}- {nested}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
        return "\n".join(lines)
    return f"{pad}{_scalar(value)}"


# Volatile figures that count bytes, shown as people read them (MiB, GiB), not raw.
_BYTE_KEYS = frozenset(
    {
        "memory_available",
        "memory_used",
        "memory_total",
        "swap_used",
        "used",
        "free",
        "total",
        "rss",
        "size",
        "bytes",
        "bytes_read",
    }
)


def figure_lines(figures: dict[str, dict[str, Any]]) -> str:
    """Volatile figures packed into few lines, so that two runs on an idle box differ in few.

    One line of `key=value` per section for its scalars, one line per list or table of
    records (`system.disks: ... | ...`), and every collector's duration on one last line.
    Byte counts read as MiB or GiB.
    """
    lines: list[str] = []
    durations: list[str] = []
    for section, values in figures.items():
        scalars: list[str] = []
        tables: list[str] = []
        for key, value in values.items():
            if key == "duration_ms":
                durations.append(f"{section}={_scalar(value)}")
            elif isinstance(value, dict) and value:
                tables.append(f"{section}.{key}: {_flat(value)}")
            elif isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
                tables.append(f"{section}.{key}: " + " | ".join(_flat(v) for v in value))
            else:
                scalars.append(f"{key}={_flat(value, key)}")
        if scalars:
            lines.append(f"{section}: " + " ".join(scalars))
        lines += tables
    if durations:
        lines.append("duration_ms: " + " ".join(durations))
    return "\n".join(lines)


def _flat(value: Any, key: str = "") -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={_flat(v, k)}" for k, v in value.items()) if value else "{}"
    if isinstance(value, list):
        return ",".join(_flat(v) for v in value) if value else "[]"
    if key in _BYTE_KEYS and isinstance(value, int) and not isinstance(value, bool):
        return human_bytes(value).replace(" ", "")
    return " ".join(_scalar(value).split())


def _scalar(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    return str(value)


def template_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between runs (compiling them costs more than a whole run's
    collecting); keyed by each template's source, so an edited template is compiled anew.
    None, and templates compiled each time, when there is no writable cache directory."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = os.path.join(base, "healthcheck", f"templates-{__version__}")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError:
        return None
    if not os.access(directory, os.W_OK | os.X_OK):
        return None
    return jinja2.FileSystemBytecodeCache(directory)


def make_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [jinja2.FunctionLoader(_section_template), jinja2.FileSystemLoader(str(TEMPLATE_DIR))]
        ),
        bytecode_cache=template_cache(),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # Markdown, not HTML: escaping is done by `inline` and `fence`
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        fence=fence,
        inline=inline,
        prose=prose,
        fix=fix,
        heading=heading,
        human_bytes=human_bytes,
        as_text=as_text,
        figure_lines=figure_lines,
        readable_stamp=readable_stamp,
    )
    return env


def _section_template(name: str) -> tuple[str, str, Callable[[], bool]] | None:
    """`sections/NAME.md.j2` from the collector's own package (healthcheck.assets); any
    other template from report_templates/."""
    if not (name.startswith("sections/") and name.endswith(".md.j2")):
        return None
    path = section_template(name.removeprefix("sections/").removesuffix(".md.j2"))
    if path is None:
        return None
    mtime = os.path.getmtime(path)
    return path.read_text(encoding="utf-8"), str(path), lambda: os.path.getmtime(path) == mtime


def report_context(
    report: Report, redactor: Redactor, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The redacted data every template sees. `data`: the report already redacted
    (redactor.obj(report.to_dict())), as a run's Rendering keeps it for all its outputs."""
    if data is None:
        data = redactor.obj(report.to_dict())
    return {"r": data, "section_names": [s.name for s in report.sections]}


def render_markdown(
    report: Report,
    redactor: Redactor,
    env: jinja2.Environment | None = None,
    data: dict[str, Any] | None = None,
) -> str:
    env = env or make_environment()
    text = env.get_template("report.md.j2").render(**report_context(report, redactor, data))
    return redactor.text(text)


def render_json(report: Report, redactor: Redactor, data: dict[str, Any] | None = None) -> str:
    """`data`: the report already redacted, as for report_context."""
    # Redacted as data, not as text: a pattern applied to JSON text could cut through quoting.
    if data is None:
        data = redactor.obj(report.to_dict())
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
