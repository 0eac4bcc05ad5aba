"""Suppression rules: derive the ``$exception_*`` properties, compile a project's rules once per
config version, and decide per event whether the first matching rule suppresses it.
"""

from worker.suppression.derived import EventProperties, derive_properties
from worker.suppression.rules import RuleFailure, RuleSet, RuleSpec, Verdict, compile_rules
from worker.suppression.sampling import is_sampled_out

__all__ = [
    "EventProperties",
    "RuleFailure",
    "RuleSet",
    "RuleSpec",
    "Verdict",
    "compile_rules",
    "derive_properties",
    "is_sampled_out",
]
