"""Redis key names shared by the API (which writes config versions) and the worker.

Every per-project key carries the hash tag ``{p:<project_id>}`` so one Lua call can touch all of
a project's keys, on a single Redis and on Redis Cluster alike.
"""

from __future__ import annotations

# One hash for all projects: the API HINCRBYs a project's field after each committed config write;
# the worker reads the whole hash once per batch (one round trip, whatever the project count).
CONFIG_VERSIONS_KEY = "spikewatch:config_versions"


def project_tag(project_id: int) -> str:
    return f"{{p:{project_id}}}"


def bump_config_version_args(project_id: int) -> tuple[str, str]:
    """(key, field) for ``HINCRBY key field 1`` after a committed config write."""
    return CONFIG_VERSIONS_KEY, str(project_id)
