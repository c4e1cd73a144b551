"""How long each inspection's records are kept, and which are due for a disposal review.

Retention is set per approval item code (``item_code``) in a data file (JSON, or YAML with
PyYAML), on top of built-in defaults::

    {
      "format": "takan-retention/1",
      "default": {"years": 30, "basis": "..."},
      "items": {
        "food-business-license": {"years": 30, "basis": "..."},
        "some-permanent-item":   {"years": null, "basis": "永久"}
      }
    }

``years: null`` means permanent. A period runs, as in archival practice, from 1 January of
the year after the record was closed (the inspection ended, or was created if it never
started; dates in Beijing time), so an inspection closed in 2026 with 30 years is due for
review on 2057-01-01.

:meth:`RetentionPolicy.due_for_disposal` only reports. Nothing in Takan deletes evidence on
its own: disposal needs an appraisal by the archives (鉴定), an approved disposal list
(销毁清册) and then a deliberate act, and records on legal hold (a complaint, a lawsuit, a
reconsideration) are passed in ``holds`` and never reported. The defaults here are a
starting point: confirm the periods with the archives department and put them in the file.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from approval.inspections import OPEN_STATUSES

__all__ = ["DisposalCandidate", "RetentionPolicy", "RetentionRule", "closing_date"]

FORMAT = "takan-retention/1"
CHINA = datetime.timezone(datetime.timedelta(hours=8))


@dataclass(frozen=True)
class RetentionRule:
    """How long records of one item are kept: ``years`` (None: permanent) and why."""

    years: int | None
    basis: str = ""

    @property
    def permanent(self) -> bool:
        """Whether the records are kept for ever."""
        return self.years is None

    def retain_until(self, closed: datetime.date) -> datetime.date | None:
        """The first day the records may be reviewed for disposal (None if permanent)."""
        if self.years is None:
            return None
        return datetime.date(closed.year + 1 + self.years, 1, 1)

    def label(self) -> str:
        """The period in Chinese, as archives write it (``永久``, ``30年``)."""
        return "永久" if self.years is None else f"{self.years}年"


@dataclass(frozen=True)
class DisposalCandidate:
    """One record whose retention period has run out (a line of the review report)."""

    inspection_id: str
    case_no: str
    item_code: str
    closed_on: datetime.date
    retain_until: datetime.date
    years: int
    basis: str

    def as_json(self) -> dict[str, Any]:
        """The candidate as JSON-ready values (dates as ISO strings)."""
        out = dataclasses.asdict(self)
        out["closed_on"] = self.closed_on.isoformat()
        out["retain_until"] = self.retain_until.isoformat()
        return out


_DEFAULT_BASIS = "定期30年（默认值；请与档案部门确认并在保管期限表中载明）"


def _default_rules() -> dict[str, RetentionRule]:
    licence = RetentionRule(30, "行政许可现场核查记录，定期30年（默认值；请与档案部门确认）")
    return {
        "food-business-license": licence,
        "pharmacy-retail-license": licence,
        "hotel-special-industry-license": licence,
    }


def _rule_from(value: Any, where: str) -> RetentionRule:
    if not isinstance(value, Mapping) or "years" not in value:
        raise ValueError(f"{where} must be an object with 'years' (a whole number, or null for permanent)")
    years = value["years"]
    if years is not None and (isinstance(years, bool) or not isinstance(years, int) or not 1 <= years <= 1000):
        raise ValueError(f"{where}.years is {years!r}: use a whole number of years from 1, or null for permanent")
    basis = value.get("basis", "")
    if not isinstance(basis, str):
        raise ValueError(f"{where}.basis must be a string")
    unknown = set(value) - {"years", "basis"}
    if unknown:
        raise ValueError(f"{where} has unknown fields {sorted(unknown)}; allowed: years, basis")
    return RetentionRule(years, basis)


def closing_date(record: Mapping[str, Any]) -> datetime.date | None:
    """The day an inspection record was closed (ended, else created), in Beijing time (UTC+8,
    the calendar the archives count years in); None while the record is still open."""
    if record.get("status") in OPEN_STATUSES:
        return None
    stamp = record.get("ended_at") or record.get("created_at")
    if not stamp:
        return None
    moment = datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    if moment.tzinfo is None:  # naive times are UTC, as Takan writes them
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(CHINA).date()


def _as_mapping(record: Any) -> Mapping[str, Any]:
    if isinstance(record, Mapping):
        return record
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return dataclasses.asdict(record)
    raise TypeError(f"expected an inspection record (Inspection or dict), got {type(record).__name__}")


class RetentionPolicy:
    """Retention rules per item code, with a default for items not listed."""

    def __init__(self, rules: Mapping[str, RetentionRule], default: RetentionRule) -> None:
        self._rules = MappingProxyType(dict(rules))
        self._default = default

    @classmethod
    def defaults(cls) -> RetentionPolicy:
        """The built-in policy: 30 years for every item (licences listed explicitly)."""
        return cls(_default_rules(), RetentionRule(30, _DEFAULT_BASIS))

    @classmethod
    def from_data(cls, data: Any, where: str = "retention policy") -> RetentionPolicy:
        """A policy from parsed JSON/YAML: the file's items override the defaults."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} must be an object with 'format', 'default' and 'items'")
        if data.get("format", FORMAT) != FORMAT:
            raise ValueError(f"{where} has format {data.get('format')!r}; this Takan reads {FORMAT!r}")
        unknown = set(data) - {"format", "default", "items"}
        if unknown:
            raise ValueError(f"{where} has unknown fields {sorted(unknown)}; allowed: format, default, items")
        base = cls.defaults()
        rules = dict(base._rules)
        default = _rule_from(data["default"], f"{where}: default") if "default" in data else base._default
        items = data.get("items", {})
        if not isinstance(items, Mapping):
            raise ValueError(f"{where}: items must be an object of item_code -> {{years, basis}}")
        for code, value in items.items():
            rules[str(code)] = _rule_from(value, f"{where}: items.{code}")
        return cls(rules, default)

    @classmethod
    def load(cls, path: Path) -> RetentionPolicy:
        """A policy from a ``.json`` or ``.yaml``/``.yml`` file (errors name the file)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read the retention policy {path}: {exc.strerror}") from None
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml  # type: ignore[import-untyped]

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as exc:  # json.JSONDecodeError, or yaml.YAMLError (not a ValueError)
            raise ValueError(f"the retention policy {path} does not parse: {exc}") from None
        return cls.from_data(data, str(path))

    @property
    def default(self) -> RetentionRule:
        """The rule for items the policy does not list."""
        return self._default

    def rule_for(self, item_code: str) -> RetentionRule:
        """The rule for ``item_code`` (the default if not listed)."""
        return self._rules.get(item_code, self._default)

    def items(self) -> dict[str, RetentionRule]:
        """The listed item codes and their rules."""
        return dict(self._rules)

    def due_for_disposal(
        self, records: Iterable[Any], today: datetime.date, holds: Collection[str] = ()
    ) -> list[DisposalCandidate]:
        """Records whose retention ran out by ``today``, oldest first. Report only.

        ``records`` are :class:`approval.inspections.Inspection` objects or their JSON dicts.
        Open records, permanent items, records without dates and ids in ``holds`` are never
        reported.
        """
        out: list[DisposalCandidate] = []
        for record in records:
            view = _as_mapping(record)
            if view.get("id") in holds:
                continue
            closed = closing_date(view)
            if closed is None:
                continue
            rule = self.rule_for(str(view.get("item_code", "")))
            until = rule.retain_until(closed)
            if until is None or rule.years is None or until > today:
                continue
            out.append(
                DisposalCandidate(
                    inspection_id=str(view.get("id")),
                    case_no=str(view.get("case_no", "")),
                    item_code=str(view.get("item_code", "")),
                    closed_on=closed,
                    retain_until=until,
                    years=rule.years,
                    basis=rule.basis,
                )
            )
        return sorted(out, key=lambda c: (c.retain_until, c.inspection_id))
