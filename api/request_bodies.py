"""Request bodies: JSON or an urlencoded form (the seed's curl examples use ``-d field=value``),
read strictly before FastAPI validates them against the route's model.

Only values every backend can store get through: no NaN/Infinity, no NUL characters or unpaired
surrogates in text (PostgreSQL rejects both), no absurd nesting. It never touches the database.
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, ClassVar
from urllib.parse import parse_qsl

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from starlette.types import Message

from api.errors import INVALID_REQUEST, ApiError, invalid

INT32_MAX = 2**31 - 1
# Deep enough for any real filter group or metadata; shallow enough that serialising it back
# (json.dumps, the drivers) can never hit Python's recursion limit.
MAX_JSON_DEPTH = 64


def integral(value: Any) -> Any:
    """JSON Schema counts 366.0 as an integer, so the API does too; strict validation would not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Positive integers the database's INTEGER columns can hold on every backend.
PositiveInt32 = Annotated[int, Field(ge=1, le=INT32_MAX), BeforeValidator(integral)]

_FORM_TYPE = "application/x-www-form-urlencoded"


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are an error, read-only ones are ignored, and
    a value must have the field's own JSON type (``"sampling_rate": true`` is not 1.0).

    Read-only fields are the response's own (``id``, ``created_at``, ...): the reference ignores
    them on input, so an object fetched from the API can be sent back as it is.
    """

    model_config = ConfigDict(extra="forbid", strict=True)
    read_only_fields: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _drop_read_only_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls.read_only_fields:
            return {key: value for key, value in data.items() if key not in cls.read_only_fields}
        return data


def omittable(description: str | None = None) -> Any:
    """An update field a client may leave out (unchanged) but not set to null.

    Its default is never validated and hidden from the schema, so the document promises only
    what is accepted: the field's own type, or nothing.
    """
    return Field(default=None, description=description, json_schema_extra=_drop_default)


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class BodyRoute(APIRoute):
    """An APIRoute whose body may be JSON or an urlencoded form, both read strictly."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        body_model = _body_model(self)
        if body_model is None:
            return handler

        async def read_body_then_handle(request: Request) -> Response:
            data = await read_body(request, body_model)
            return await handler(_json_request(request, data))

        return read_body_then_handle


async def read_body(request: Request, model: type[BaseModel]) -> Any:
    """The body as JSON-compatible data; an empty body is an empty object."""
    raw = await request.body()
    if not raw.strip():
        return {}
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        data = parse_json(raw, attr=None)
    elif media_type == _FORM_TYPE:
        data = _form_data(raw, model)
    else:
        raise ApiError(
            415,
            INVALID_REQUEST,
            "unsupported_media_type",
            f'Unsupported media type "{media_type}" in request.',
        )
    check_storable(data)
    return data


def parse_json(raw: bytes | str, attr: str | None) -> Any:
    """Strict JSON: NaN, Infinity and numbers too large for a float are rejected."""
    try:
        return json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError is a ValueError; so are our own rejections and oversized integers.
        raise invalid(f"JSON parse error - {exc}", attr, code="parse_error") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def check_storable(data: Any) -> None:
    """Reject text no backend can store and nesting too deep to handle safely."""
    pending: list[tuple[Any, list[str]]] = [(data, [])]
    while pending:
        value, path = pending.pop()
        if len(path) > MAX_JSON_DEPTH:
            raise invalid(f"nested deeper than {MAX_JSON_DEPTH} levels", _dotted(path))
        if isinstance(value, str):
            _check_text(value, path)
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, path)
                pending.append((item, [*path, key]))
        elif isinstance(value, list):
            pending.extend((item, [*path, str(index)]) for index, item in enumerate(value))


def _check_text(text: str, path: list[str]) -> None:
    if "\x00" in text:
        raise invalid("NUL characters (\\u0000) are not allowed in text.", _dotted(path))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise invalid("Text must be valid Unicode (unpaired surrogate).", _dotted(path)) from exc


def _dotted(path: list[str]) -> str | None:
    return ".".join(path) or None


def _form_data(raw: bytes, model: type[BaseModel]) -> dict[str, Any]:
    """Form fields typed by the model: lists repeat their key, objects are JSON texts, numbers
    are read from their text, and an empty value is null (as HTML forms and the reference treat
    it)."""
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError as exc:
        raise invalid("Form data must be UTF-8.", None) from exc
    values_by_name: dict[str, list[str]] = {}
    for name, value in pairs:
        values_by_name.setdefault(name, []).append(value)
    data: dict[str, Any] = {}
    for name, values in values_by_name.items():
        field = model.model_fields.get(name)
        shape = _shape(field.annotation) if field is not None else "scalar"
        if shape == "list":
            data[name] = values
        elif values[-1] == "":
            data[name] = None
        elif shape == "object":
            data[name] = parse_json(values[-1], attr=name)
        elif shape in ("int", "float"):
            data[name] = _form_number(values[-1], shape)
        else:
            # Like a Django QueryDict, the last of repeated values wins.
            data[name] = values[-1]
    return data


def _form_number(text: str, shape: str) -> Any:
    try:
        return int(text) if shape == "int" else _finite_float(text)
    except ValueError:
        # Left as text, so validation refuses it naming the field.
        return text


def _shape(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        shapes = {_shape(arg) for arg in typing.get_args(annotation) if arg is not type(None)}
        return shapes.pop() if len(shapes) == 1 else "scalar"
    if origin is Annotated:
        return _shape(typing.get_args(annotation)[0])
    if annotation is list or origin is list:
        return "list"
    if annotation is dict or origin is dict:
        return "object"
    if annotation is int or annotation is float:
        return annotation.__name__
    return "scalar"


def _body_model(route: APIRoute) -> type[BaseModel] | None:
    if route.body_field is None:
        return None
    annotation = route.body_field.field_info.annotation
    is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return annotation if is_model else None


def _json_request(request: Request, data: Any) -> Request:
    """The same request with ``data`` as its JSON body, for FastAPI's own validation."""
    body = json.dumps(data).encode()
    headers = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"]
    headers.append((b"content-type", b"application/json"))
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await request.receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request({**request.scope, "headers": headers}, receive)
