"""Every operation of the seed API (plus list releases, delete and reorder suppression rules,
which issues add), with the scope it needs: the tables the auth and routing tests walk through."""

from __future__ import annotations

import uuid

from api.auth import READ_SCOPE, WRITE_SCOPE

ANY_ID = str(uuid.uuid4())

OPERATIONS: list[tuple[str, str, str]] = [
    ("GET", "releases/", READ_SCOPE),
    ("POST", "releases/", WRITE_SCOPE),
    ("GET", f"releases/{ANY_ID}/", READ_SCOPE),
    ("PATCH", f"releases/{ANY_ID}/", WRITE_SCOPE),
    ("DELETE", f"releases/{ANY_ID}/", WRITE_SCOPE),
    ("GET", "releases/hash/abc/", READ_SCOPE),
    ("GET", "settings/retrieve_settings/", READ_SCOPE),
    ("PATCH", "settings/update_settings/", WRITE_SCOPE),
    ("GET", "spike_detection_config/", READ_SCOPE),
    ("PATCH", "spike_detection_config/update_config/", WRITE_SCOPE),
    ("GET", "spike_events/", READ_SCOPE),
    ("GET", "stack_frames/", READ_SCOPE),
    ("GET", f"stack_frames/{ANY_ID}/", READ_SCOPE),
    ("DELETE", f"stack_frames/{ANY_ID}/", WRITE_SCOPE),
    ("POST", "stack_frames/batch_get/", READ_SCOPE),
    ("GET", "suppression_rules/", READ_SCOPE),
    ("POST", "suppression_rules/", WRITE_SCOPE),
    ("GET", f"suppression_rules/{ANY_ID}/", READ_SCOPE),
    ("PATCH", f"suppression_rules/{ANY_ID}/", WRITE_SCOPE),
    ("DELETE", f"suppression_rules/{ANY_ID}/", WRITE_SCOPE),
    ("PATCH", "suppression_rules/reorder/", WRITE_SCOPE),
]

WRITE_OPERATIONS = [(method, path) for method, path, scope in OPERATIONS if scope == WRITE_SCOPE]
