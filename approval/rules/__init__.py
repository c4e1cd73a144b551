"""Rules that judge an inspection (8.3), as versioned data files in CEL.

    book = RuleBook(admin_dir)                       # built-in rule files, then the admin's
    facts = facts_from(record_json, events, warnings, template=template)
    verdict = await judge(book.find(record_json["item_code"]), facts)
    verdict.as_json()   # {outcome, reasons: [{rule, message, message_en, severity}], rules_version, ...}

See README.md beside this file for the rule file format, the facts and the choice of CEL
implementation.
"""

from .expressions import Expressions
from .facts import FACT_NAMES, FACT_TYPES, facts_from
from .judgement import judge
from .rulebook import RuleBook
from .ruleset import Outcome, Rule, RuleFileError, RuleSet, load_rules
from .verdict import Reason, Verdict

__all__ = [
    "FACT_NAMES",
    "FACT_TYPES",
    "Expressions",
    "Outcome",
    "Reason",
    "Rule",
    "RuleBook",
    "RuleFileError",
    "RuleSet",
    "Verdict",
    "facts_from",
    "judge",
    "load_rules",
]
