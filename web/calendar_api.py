"""Admin REST for the working-day calendar: load a year's holiday arrangement, see what is known.

* ``GET /api/v1/calendar``: the years known and where each comes from (imported or the
  ``chinese-calendar`` package), and the current warning, if any;
* ``GET /api/v1/calendar/{year}``: the arrangement in force and every stored version;
* ``PUT /api/v1/calendar/{year}``: import a year (the file format of ``docs/calendar.md``, as
  JSON or YAML); 201 for a first import, 200 when it replaces an earlier version (kept).

:meth:`CalendarApi.lifecycle` (a ``cleanup_ctx``) also keeps the calendar fresh: it loads the
imported years at start-up and re-reads them every minute, so an import on one node (or by ``takan calendar
import``) reaches every node, and it logs :meth:`~approval.workdays.WorkingCalendar.warning`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import AsyncIterator, Optional

from aiohttp import web

from approval.calendar_file import parse_arrangement
from errors import NotFound, UnsupportedMediaType
from approval.workdays import PACKAGE, WorkingCalendar, package_years

from .auth import actor_of, caller
from .bodies import read_body
from .routes import Route, get, put

logger = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
BODY_TYPES = ("application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
REFRESH_S = 60.0
WARNING_LOG_EVERY_S = 24 * 3600.0


class CalendarApi:
    def __init__(self, calendar: WorkingCalendar, refresh_s: float = REFRESH_S) -> None:
        self.calendar = calendar
        self.refresh_s = refresh_s
        self._warned: tuple[Optional[str], float] = (None, 0.0)

    def routes(self) -> list[Route]:
        return [
            get("/api/v1/calendar", self.years, "admin"),
            get("/api/v1/calendar/{year}", self.year, "admin"),
            put("/api/v1/calendar/{year}", self.load, "admin"),
        ]

    async def years(self, request: web.Request) -> web.Response:
        years = package_years()
        return web.json_response(
            {
                "years": [source.as_json() for source in self.calendar.years()],
                "package": {"name": PACKAGE, "first_year": years.start, "last_year": years.stop - 1},
                "warning": self.calendar.warning(),
            }
        )

    async def year(self, request: web.Request) -> web.Response:
        year = _year(request)
        source = self.calendar.source_of(year)
        versions = [stored.provenance() for stored in await self.calendar.history(year)]
        if source is None:
            raise NotFound(
                f"the working-day calendar has no data for {year}"
                + (f" (stored versions: {len(versions)})" if versions else "")
                + f"; load the State Council's notice with `takan calendar import FILE` or PUT /api/v1/calendar/{year}"
            )
        return web.json_response(
            {**source.as_json(), "arrangement": self.calendar.arrangement(year).as_json(), "versions": versions}
        )

    async def load(self, request: web.Request) -> web.Response:
        year = _year(request)
        if request.content_type not in BODY_TYPES:
            raise UnsupportedMediaType(f"send the arrangement as {' or '.join(BODY_TYPES[:2])}, not {request.content_type}")
        data = await read_body(request, MAX_BODY, "the arrangement")
        arrangement = parse_arrangement(data, expected_year=year, name=f"the {year} arrangement")
        stored, previous = await self.calendar.import_year(arrangement, actor_of(caller(request)))
        body = {
            **stored.provenance(),
            "year": stored.year,
            "replaced_version": previous.version if previous else None,
            "arrangement": arrangement.as_json(),
        }
        return web.json_response(body, status=200 if previous else 201)

    # ---- life cycle -----------------------------------------------------------------------

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """Load the imported years, then re-read them every minute until the app stops."""
        await self.calendar.start()
        self._log_warning()
        task = asyncio.create_task(self._refresh_loop(), name="calendar-refresh")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.calendar.close()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.calendar.refresh()
            except Exception as exc:  # the store may be down; the years loaded stay in force
                logger.warning("working-day calendar: refresh failed (%s); keeping the years loaded", exc)
            self._log_warning()

    def _log_warning(self) -> None:
        """Log the calendar's warning when it appears or changes, and once a day while it lasts."""
        warning = self.calendar.warning()
        last, at = self._warned
        now = time.monotonic()
        if warning is not None and (warning != last or now - at >= WARNING_LOG_EVERY_S):
            logger.warning("%s", warning)
            self._warned = (warning, now)
        elif warning is None:
            self._warned = (None, 0.0)


def _year(request: web.Request) -> int:
    text = request.match_info["year"]
    if not (len(text) == 4 and text.isdigit()):
        raise NotFound(f"no calendar year {text!r}; years are written like 2027")
    return int(text)
