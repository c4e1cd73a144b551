"""Masked forms of personal data for screens, exports and logs.

* :func:`mask_id_number`: first 4 and last 4 characters kept (``3714**********123X``): the
  region stays, the birth date goes.
* :func:`mask_phone`: first 3 and last 4 digits kept (``138****0000``).
* :func:`mask_name`: surname kept (``张*``, ``张*三``, ``欧**明``).
* :func:`scrub`: every GB 11643 identity number and mainland mobile number in free text
  replaced by its masked form; :func:`find_sensitive` reports them (masked) without changing.
* :class:`ScrubbingFilter`: a :class:`logging.Filter` that scrubs each record's message,
  arguments, exception text and stack; :func:`install_scrubbing` puts it on a logger and on
  that logger's handlers.

Detection: an identity number is 18 ASCII characters (6-digit region, a plausible birth date
in 1800-2099, 3-digit sequence, check digit or X), the check digit is not required (a mistyped
number is still personal data); a mobile number is ``1[3-9]`` and 9 more digits, optionally
with ``+86``/``0086``/``86`` in front and spaces or hyphens as ``138 0000 0000``. Neither may
touch an ASCII letter or digit on either side, so hex digests, UUIDs and longer digit runs
(timestamps, amounts) are left alone, while Chinese text around a number (``电话13800000000``)
does not hide it. Full-width digits and the old 15-digit numbers are not detected.
"""

from __future__ import annotations

import logging
import re
import traceback
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ID_NUMBER_PATTERN",
    "MOBILE_PATTERN",
    "Finding",
    "ScrubbingFilter",
    "find_sensitive",
    "install_scrubbing",
    "mask_id_number",
    "mask_name",
    "mask_phone",
    "scrub",
]

_EDGE_BEFORE = r"(?<![0-9A-Za-z])"
_EDGE_AFTER = r"(?![0-9A-Za-z])"

#: A GB 11643-1999 citizen identity number (check digit not verified).
ID_NUMBER_PATTERN = re.compile(
    _EDGE_BEFORE
    + r"[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx]"
    + _EDGE_AFTER
)

#: A mainland China mobile number, optionally with the country code and separators.
MOBILE_PATTERN = re.compile(
    r"(?<![0-9A-Za-z+])(?:(?:\+|00)?86[- ]?)?1[3-9][0-9](?:[- ]?[0-9]{4}){2}" + _EDGE_AFTER
)

_COUNTRY_CODE = re.compile(r"^(?:\+|00)?86[- ]?(?=1[3-9])")


def mask_id_number(value: str) -> str:
    """``value`` with all but its first 4 and last 4 characters starred.

    ``"371402199001011237"`` becomes ``"3714**********1237"``; values of 8 characters or fewer
    are starred entirely (they would show too much of themselves).
    """
    value = value.strip()
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_phone(value: str) -> str:
    """A phone number with its middle digits starred, separators kept.

    A mobile number keeps its first 3 and last 4 digits (``"13800000000"`` becomes
    ``"138****0000"``, ``"+86 138-0000-0000"`` becomes ``"+86 138-****-0000"``); other numbers
    keep their first 3 and last 4 digits when they have at least 9, else only the last 2.
    """
    value = value.strip()
    prefix = ""
    country = _COUNTRY_CODE.match(value)
    if country:
        prefix, value = value[: country.end()], value[country.end():]
    digits = sum(ch.isdigit() for ch in value)
    if digits >= 9:
        keep_head, keep_tail = 3, 4
    else:
        keep_head, keep_tail = 0, min(2, digits)
    out = []
    index = 0
    for ch in value:
        if ch.isdigit():
            index += 1
            hidden = keep_head < index <= digits - keep_tail
            out.append("*" if hidden else ch)
        else:
            out.append(ch)
    return prefix + "".join(out)


def mask_name(value: str) -> str:
    """A personal name with all but its first (and, from 3 characters, last) character starred.

    ``"张三"`` becomes ``"张*"``, ``"张小三"`` ``"张*三"``, ``"欧阳小明"`` ``"欧**明"``; a single
    character becomes ``"*"``. Names of organisations need no masking: do not pass them here.
    """
    value = value.strip()
    if len(value) <= 1:
        return "*" * len(value)
    if len(value) == 2:
        return value[0] + "*"
    return value[0] + "*" * (len(value) - 2) + value[-1]


@dataclass(frozen=True)
class Finding:
    """An unmasked number found in text: its kind (``id_number``/``phone``), masked form, place."""

    kind: str
    masked: str
    start: int
    line: int

    def __str__(self) -> str:
        label = "ID number" if self.kind == "id_number" else "mobile number"
        return f"an unmasked {label} ({self.masked}) at line {self.line}"


def find_sensitive(text: str) -> list[Finding]:
    """Every identity and mobile number in ``text``, masked, in order of appearance."""
    found: list[Finding] = []
    taken: list[tuple[int, int]] = []
    for match in ID_NUMBER_PATTERN.finditer(text):
        found.append(Finding("id_number", mask_id_number(match.group()), match.start(), text.count("\n", 0, match.start()) + 1))
        taken.append(match.span())
    for match in MOBILE_PATTERN.finditer(text):
        if any(start <= match.start() < end for start, end in taken):
            continue
        found.append(Finding("phone", mask_phone(match.group()), match.start(), text.count("\n", 0, match.start()) + 1))
    return sorted(found, key=lambda f: f.start)


def scrub(text: str) -> str:
    """``text`` with every identity and mobile number replaced by its masked form."""
    text = ID_NUMBER_PATTERN.sub(lambda m: mask_id_number(m.group()), text)
    return MOBILE_PATTERN.sub(lambda m: mask_phone(m.group()), text)


def _scrub_arg(value: Any) -> Any:
    # Numbers stay numbers so that %d and %.2f still format; an int that is a phone number
    # is caught after formatting (see ScrubbingFilter.filter).
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return scrub(str(value))


class ScrubbingFilter(logging.Filter):
    """Masks identity and mobile numbers in every log record that passes.

    The message is formatted with its arguments and scrubbed, and the record's ``args`` are
    emptied, so no handler or formatter can see the raw values; exception text and stack
    info are formatted and scrubbed too. Records are never dropped.

    A filter on a logger sees only records logged on that very logger, not those of its
    children: install it on the handlers (see :func:`install_scrubbing`).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub ``record`` in place; always let it through."""
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: scrub the parts instead of the whole
            record.msg = scrub(str(record.msg))
            if isinstance(record.args, tuple):
                record.args = tuple(_scrub_arg(a) for a in record.args)
            elif isinstance(record.args, dict):
                record.args = {k: _scrub_arg(v) for k, v in record.args.items()}
        else:
            record.msg = scrub(message)
            record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            if not record.exc_text:
                record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            # Formatters use exc_text when it is set; keep exc_info for handlers that
            # inspect the exception object, but its text is what gets printed.
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def install_scrubbing(logger: logging.Logger | None = None) -> ScrubbingFilter:
    """Put one :class:`ScrubbingFilter` on ``logger`` (default: the root) and its handlers.

    Call it after logging is configured: handlers added later need
    ``handler.addFilter(filter)`` with the returned filter. Calling it again adds no
    second filter.
    """
    target = logger if logger is not None else logging.getLogger()
    existing = next((f for f in target.filters if isinstance(f, ScrubbingFilter)), None)
    active = existing or ScrubbingFilter()
    if existing is None:
        target.addFilter(active)
    for handler in target.handlers:
        if not any(isinstance(f, ScrubbingFilter) for f in handler.filters):
            handler.addFilter(active)
    return active
