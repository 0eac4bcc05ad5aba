"""One router per resource of the seed API, all under ``/api/projects/{project_id}/error_tracking/``."""
