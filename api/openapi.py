"""The OpenAPI document served at ``/api/schema/``: FastAPI's, corrected to what the API does.

Validation errors are 400 in the standard error shape (not FastAPI's 422), request bodies may
also be urlencoded forms, with object fields sent as JSON text and lists as repeated keys, and a
body whose fields are all optional may be left out (an empty body reads as ``{}``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas = document.get("components", {}).get("schemas", {})
    for path_item in document["paths"].values():
        for operation in path_item.values():
            operation.get("responses", {}).pop("422", None)
            _add_form_body(operation, schemas)
            _mark_optional_body(operation, schemas)
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    app.openapi_schema = document
    return document


def _body_model(operation: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any] | None:
    json_body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if json_body is None:
        return None
    return schemas.get(json_body["schema"].get("$ref", "").rsplit("/", 1)[-1])


def _mark_optional_body(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    model = _body_model(operation, schemas)
    if model is not None and not model.get("required"):
        operation["requestBody"]["required"] = False


def _add_form_body(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    model = _body_model(operation, schemas)
    if model is None:
        return
    content = operation["requestBody"]["content"]
    json_body = content["application/json"]
    encoding = {
        name: {"contentType": "application/json"}
        for name, field in model.get("properties", {}).items()
        if _is_object(field)
    }
    content["application/x-www-form-urlencoded"] = {
        "schema": json_body["schema"],
        **({"encoding": encoding} if encoding else {}),
    }


def _is_object(field: dict[str, Any]) -> bool:
    variants = field.get("anyOf", [field])
    return any(variant.get("type") == "object" for variant in variants)
