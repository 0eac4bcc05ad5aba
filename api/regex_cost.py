"""Bounds what the regexes of one suppression rule may cost the worker for each event.

RE2 (``schemas.property_filters``) runs in time linear in the text, but the factor grows with the
compiled program: ``\\w{999}`` written 80 times is a 560-byte pattern that compiles and then takes
about a minute over a 100 kB message. So the API refuses a rule whose regexes compile to more
than MAX_RULE_REGEX_INSTRUCTIONS RE2 instructions in all. It reads filters already validated by
the grammar and never evaluates one.
"""

from __future__ import annotations

from typing import Any

from schemas.property_filters import (
    REGEX_OPERATORS,
    compile_regex,
    filter_text,
    is_group,
    operand_list,
)

# About 25 ms over 100 kB of adversarial text for the costliest shapes (counted repetitions of a
# class); a literal alternation of hundreds of words compiles to about a hundred instructions.
MAX_RULE_REGEX_INSTRUCTIONS = 5_000


class RegexTooCostly(ValueError):
    def __init__(self, attr: str) -> None:
        super().__init__(
            f"the rule's regexes compile to more than {MAX_RULE_REGEX_INSTRUCTIONS} RE2 "
            "instructions; simplify them (large counted repetitions such as \\w{999} are the "
            "usual cause)"
        )
        self.attr = attr


def check_regex_cost(filters: dict[str, Any] | None) -> None:
    """Raise RegexTooCostly, naming the operand that went over the budget, if the rule's
    regexes are too costly together."""
    total = 0
    pending: list[tuple[dict[str, Any], str]] = [(filters, "filters")] if filters else []
    while pending:
        node, attr = pending.pop()
        if is_group(node):
            pending.extend(
                (child, f"{attr}.values.{index}") for index, child in enumerate(node["values"])
            )
            continue
        if node["operator"] not in REGEX_OPERATORS:
            continue
        listed = isinstance(node["value"], list)
        for index, operand in enumerate(operand_list(node["value"])):
            total += compile_regex(filter_text(operand)).programsize
            if total > MAX_RULE_REGEX_INSTRUCTIONS:
                raise RegexTooCostly(f"{attr}.value.{index}" if listed else f"{attr}.value")
