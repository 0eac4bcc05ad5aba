"""One router per resource of the seed API, under ``/api/projects/{project_id}/error_tracking/``."""
