"""Reliability of the worker under faults, replays and hostile input (issue 8, worker half)."""

import pytest

# The ledger's assertions are the tests' verdicts: show their operands when they fail.
pytest.register_assert_rewrite("tests.reliability.ledger")
