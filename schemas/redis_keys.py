"""Redis key names shared by the API (which writes config versions) and the worker.

Every per-project key carries the hash tag ``{p:<project_id>}`` so one Lua call can touch all of
a project's keys, on a single Redis and on Redis Cluster alike.
"""

from __future__ import annotations


def project_tag(project_id: int) -> str:
    return f"{{p:{project_id}}}"


def config_version_key(project_id: int) -> str:
    """The project's config version: the API ``INCR``s it after each committed config write; the
    worker reads those of a batch's projects once per batch. Under the project's hash tag, it
    lives on the cluster node of the project's other keys."""
    return f"{project_tag(project_id)}:config_version"
