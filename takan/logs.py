"""Log lines: text for a person at a terminal, or one JSON object per line for a collector.

A JSON line carries ``at`` (UTC, RFC 3339 ms), ``level``, ``logger``, ``message`` and,
when the message names one, the ``inspection`` id, so a log pipeline can follow an
inspection across nodes. Messages are scrubbed of ID and phone numbers before either form
is written (:func:`privacy.masking.install_scrubbing`).
"""

from __future__ import annotations

import datetime
import json
import logging
import re

#: Inspection ids look like ``20261201223156-206fa4f22a258c5e`` (approval.inspections.new_id).
_INSPECTION_ID = re.compile(r"\b(\d{14}-[0-9a-f]{16})\b")


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, object] = {
            "at": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        found = _INSPECTION_ID.search(message)
        if found:
            line["inspection"] = found.group(1)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)
