"""Emails as data: Jinja2 templates shipped in the package, rendered and packed into MIME.

Pure code, no I/O besides reading the templates once: the service renders when
an event arrives, the delivery worker packs and sends.

- HTML is autoescaped and every variable must exist (``StrictUndefined``): a
  template that names a missing field fails loudly instead of mailing a blank.
- Money is formatted from integer minor units by one helper (:func:`format_money`,
  Babel's CLDR data: the currency's own digits and symbol).
- Headers never carry a line break: every header value is folded to one line
  first, and the stdlib ``email`` package (``EmailMessage`` with the default
  policy) does the quoting and encoding. The policy's header registry makes each
  header class once (:class:`_HeaderClasses`), not once per header of every message.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime, parseaddr
from typing import Any

from babel.numbers import format_currency, get_currency_precision
from jinja2 import (
    Environment,
    PackageLoader,
    StrictUndefined,
    Undefined,
    UndefinedError,
    select_autoescape,
)

LOCALE = "en_US"
MAX_SUBJECT = 200
# Line breaks and every other control character, including Unicode's own line separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r"\s+")


def format_money(cents: int, currency: str) -> str:
    """``1999, "USD"`` -> ``$19.99``; the minor units follow the currency (JPY has none)."""
    amount = Decimal(cents).scaleb(-get_currency_precision(currency))
    return str(format_currency(amount, currency, locale=LOCALE))


def _money_filter(cents: object, currency: object) -> str:
    """``{{ x.total_cents | money(x.currency) }}``: integers only, and no missing values."""
    for value in (cents, currency):
        if isinstance(value, Undefined):
            str(value)  # StrictUndefined raises here, naming the missing variable
            raise UndefinedError("money() got an undefined value")
    if not isinstance(cents, int) or isinstance(cents, bool):
        raise TypeError(f"money() needs integer minor units, not {type(cents).__name__}")
    return format_money(cents, str(currency))


def one_line(value: object) -> str:
    """``value`` as one line of plain text: control characters become spaces."""
    return _SPACES.sub(" ", _CONTROL.sub(" ", str(value))).strip()


def header_text(value: object, limit: int = MAX_SUBJECT) -> str:
    """A safe header value: one line, at most ``limit`` characters."""
    text = one_line(value)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class Templates:
    """Every event type's subject, text and HTML templates, loaded and checked at start-up."""

    PARTS = ("subject.txt", "txt", "html")

    def __init__(self, types: Iterable[str]) -> None:
        self.env = Environment(
            loader=PackageLoader("notify_hub", "templates"),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            # Templates ship inside the package and never change under a running
            # process: no file-system check on every email.
            auto_reload=False,
        )
        self.env.filters["money"] = _money_filter
        self.env.filters["one_line"] = one_line
        self.types = tuple(types)
        # A missing or broken template stops the start, not the first email of its kind.
        self.compiled = {
            type_: tuple(self.env.get_template(f"{type_}.{part}") for part in self.PARTS)
            for type_ in self.types
        }

    def render(self, type_: str, context: dict[str, Any]) -> RenderedEmail:
        subject, text, html = (template.render(context) for template in self.compiled[type_])
        return RenderedEmail(header_text(subject), text, html)


@dataclass(frozen=True)
class Envelope:
    """What the worker hands to SMTP: the message and its envelope addresses."""

    message: EmailMessage
    sender: str
    recipient: str


class _HeaderClasses(HeaderRegistry):
    """The stdlib's header registry, each header class made once.

    ``HeaderRegistry`` builds a new class with ``type()`` for every header it
    parses, a quarter of the CPU of building and flattening a message. The class
    depends only on the registered class the name maps to, so one per registered
    class serves every message (the cache is bounded by the registry).
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[type, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        kind = self.registry.get(name.lower(), self.default_class)
        made = self._made.get(kind)
        if made is None:
            made = self._made[kind] = super().__getitem__(name)
        return made


HEADERS = _HeaderClasses()
#: The default policy (RFC-correct folding and encoding), with the caching registry.
POLICY = default_policy.clone(header_factory=HEADERS)


def message_id(event_id: uuid.UUID | str, domain: str) -> str:
    """Derived from the event id, so every copy of one event's email is recognisably the same."""
    return f"<{uuid.UUID(str(event_id))}@{domain}>"


def build_message(
    *,
    event_id: uuid.UUID | str,
    mail_from: str,
    domain: str,
    recipient_email: str,
    recipient_name: str,
    subject: str,
    text: str,
    html: str,
    created_at: datetime,
) -> Envelope:
    """A multipart/alternative message (text first, HTML preferred) for one recipient."""
    from_name, from_address = parseaddr(mail_from)
    message = EmailMessage(policy=POLICY)
    message["From"] = Address(display_name=header_text(from_name), addr_spec=from_address)
    message["To"] = Address(display_name=header_text(recipient_name), addr_spec=recipient_email)
    message["Subject"] = header_text(subject)
    message["Date"] = format_datetime(created_at)
    message["Message-ID"] = message_id(event_id, domain)
    # RFC 3834: an automatic message; vacation responders should not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return Envelope(message, from_address, recipient_email)
