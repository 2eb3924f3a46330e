"""Messages from templates: one sandboxed Jinja2 environment for every kind, channel and locale.

Templates live at ``templates/<locale>/<kind>.<channel>.<ext>.j2`` and share the wording in
``templates/<locale>/_common.j2``, imported as ``_common.<ext>.j2``; a template sets ``subject``
with ``{% set subject = ... %}`` where its channel has one. A variable the template needs and
the context lacks is an error, never a blank; HTML is autoescaped, and customer-supplied text
is data, never template syntax.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time, get_timezone_location
from babel.numbers import format_currency
from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound, select_autoescape
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from amends.errors import TemplateError
from amends.exit_questions import questions_in

log = logging.getLogger(__name__)

FALLBACK_LOCALE = "en"


@dataclass(frozen=True)
class Rendered:
    """A rendered message: its subject (empty where the channel has none) and body."""

    subject: str
    body: str
    locale: str


class _Loader(FileSystemLoader):
    """Serves each locale's ``_common.j2`` macros under two names, ``_common.html.j2`` and
    ``_common.txt.j2``, so that they are compiled with the importing template's escaping: a
    macro's body escapes (or not) as the file it was compiled from, whatever imports it."""

    def get_source(self, environment: Any, template: str) -> tuple[str, str | None, Any]:
        folder, _, name = template.rpartition("/")
        if name == "_common.j2":
            raise JinjaTemplateError(f"{template}: import _common.html.j2 or _common.txt.j2")
        if name in {"_common.html.j2", "_common.txt.j2"}:
            source, filename, uptodate = super().get_source(environment, f"{folder}/_common.j2")
            return source, filename, uptodate
        return super().get_source(environment, template)


class Templates:
    """The template environment, with Babel filters for the customer's locale and time zone.

    Example:
        >>> templates = Templates(Path("templates"), timezone="Europe/Madrid")
        >>> templates.render("apology", "email", "html", "es", context).subject
        'Lo sentimos: ...'
    """

    def __init__(self, root: Path, *, timezone: str) -> None:
        self.root = root
        self.timezone = ZoneInfo(timezone)
        self.env = ImmutableSandboxedEnvironment(
            loader=_Loader(root),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )

    def template_name(self, kind: str, channel: str, ext: str, locale: str) -> str:
        return f"{locale}/{kind}.{channel}.{ext}.j2"

    def resolve_locale(self, kind: str, channel: str, ext: str, locale: str) -> str:
        """The customer's language if a template exists in it, else its base language, else
        English (logged, so a missing translation is noticed)."""
        language = locale.split("_")[0]
        for candidate in dict.fromkeys((locale, language, FALLBACK_LOCALE)):
            if (self.root / self.template_name(kind, channel, ext, candidate)).is_file():
                if candidate != locale and candidate != language:
                    log.warning(
                        "No %s translation of %s.%s.%s; using %s",
                        locale,
                        kind,
                        channel,
                        ext,
                        candidate,
                    )
                return candidate
        raise TemplateError(
            f"template {self.template_name(kind, channel, ext, locale)} is missing from "
            f"{self.root} (and there is no {FALLBACK_LOCALE} one); reinstall amends, or "
            "complete AMENDS_TEMPLATES_DIR"
        )

    def require(self, kind: str, channel: str, ext: str, locale: str) -> None:
        """Check that the template :meth:`render` would use, and the wording it shares, exist.

        Raises:
            TemplateError: naming the missing file.
        """
        chosen = self.resolve_locale(kind, channel, ext, locale)
        common = f"{chosen}/_common.j2"
        if not (self.root / common).is_file():
            raise TemplateError(
                f"template {common} is missing from {self.root}; reinstall amends, or complete "
                "AMENDS_TEMPLATES_DIR"
            )

    def render(
        self, kind: str, channel: str, ext: str, locale: str, context: dict[str, Any]
    ) -> Rendered:
        """Render one message for a customer's locale.

        Raises:
            TemplateError: the template is missing, uses a variable the context lacks, or fails.
        """
        chosen = self.resolve_locale(kind, channel, ext, locale)
        name = self.template_name(kind, channel, ext, chosen)
        try:
            template = self.env.get_template(name)
            variables = {**context, **self.formatters(chosen)}
            module = template.make_module(variables)
            body = str(module).strip() + "\n"
            subject = str(getattr(module, "subject", "")).strip()
        except TemplateNotFound as missing:
            raise TemplateError(f"{name}: template {missing} not found") from None
        except JinjaTemplateError as error:
            raise TemplateError(f"{name}: {error}") from None
        # A subject becomes a mail header: no line breaks, whatever the data held.
        subject = " ".join(subject.split())
        return Rendered(subject=subject, body=body, locale=chosen)

    def formatters(self, locale: str) -> dict[str, Any]:
        """``money``, ``when``, ``day`` and ``zone`` for templates: Babel, in the locale and time
        zone; and ``exit_questions``, those of :mod:`amends.exit_questions` in the locale."""
        tz = self.timezone

        def money(amount: float, currency: str) -> str:
            return format_currency(amount, currency, locale=locale)

        def when(moment: datetime, zone: str | None = None) -> str:
            local = moment.astimezone(ZoneInfo(zone) if zone else tz)
            date = format_date(local, "full", locale=locale)
            return f"{date}, {format_time(local, 'short', locale=locale)}"

        def day(moment: datetime, zone: str | None = None) -> str:
            return format_date(
                moment.astimezone(ZoneInfo(zone) if zone else tz), "long", locale=locale
            )

        def zone(name: str) -> str:
            """A time zone as the customer says it ("hora de España (Madrid)"), not its id."""
            if name in {"UTC", "Etc/UTC"}:
                return "UTC"
            return get_timezone_location(name, locale=locale)

        return {
            "money": money,
            "zone": zone,
            "when": when,
            "day": day,
            "exit_questions": questions_in(locale),
        }


class _PlainText(HTMLParser):
    """Our templates' HTML (paragraphs, line breaks, lists) as readable plain text."""

    BLOCKS = frozenset({"p", "div", "ul", "ol", "h1", "h2", "h3", "title", "style"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.numbers: list[int] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in {"style", "title", "head"}:
            self.skip += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag in self.BLOCKS:
            self.out.append("\n\n")
            if tag == "ol":
                self.numbers.append(0)
        elif tag == "li":
            if self.numbers:
                self.numbers[-1] += 1
                self.out.append(f"\n{self.numbers[-1]}. ")
            else:
                self.out.append("\n- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"style", "title", "head"}:
            self.skip -= 1
        elif tag == "ol" and self.numbers:
            self.numbers.pop()
        elif tag in self.BLOCKS:
            self.out.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(re.sub(r"[ \t\r\n]+", " ", data))


def plain_text(html: str) -> str:
    """The text of an HTML message, for the text/plain alternative of an email."""
    parser = _PlainText()
    parser.feed(html)
    parser.close()
    text = "".join(parser.out)
    lines = [line.strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
