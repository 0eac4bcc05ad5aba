"""HTTP/1.1 over a bare socket, for requests an HTTP client would tidy up first: dot segments
left in a path, a chunked body sent exactly as written, a Content-Length that lies."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class RawResponse:
    status: int
    head: str
    body: bytes


def raw_request(
    base_url: str,
    request_line: str,
    headers: dict[str, str],
    body_parts: Iterable[bytes] = (),
) -> RawResponse:
    """Send the request line and headers as given, then each body part as it comes; a server
    that answers and closes before the body is all sent is expected, not an error."""
    address = urlsplit(base_url)
    with socket.create_connection(
        (address.hostname, address.port), timeout=TIMEOUT_SECONDS
    ) as connection:
        # The server closes after answering, so the whole answer is everything until EOF.
        all_headers = {**headers, "Connection": "close"}
        head = "".join(f"{name}: {value}\r\n" for name, value in all_headers.items())
        connection.sendall(f"{request_line}\r\nHost: {address.netloc}\r\n{head}\r\n".encode())
        try:
            for part in body_parts:
                connection.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = bytearray()
        try:
            while chunk := connection.recv(65536):
                received.extend(chunk)
        except ConnectionResetError:
            pass
    head_text, _, body = bytes(received).partition(b"\r\n\r\n")
    status = int(head_text.split(b" ", 2)[1])
    return RawResponse(status=status, head=head_text.decode("latin-1"), body=body)


def chunked(parts: Iterable[bytes]) -> Iterable[bytes]:
    """The parts in chunked transfer encoding, ending with the last (empty) chunk."""
    for part in parts:
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    yield b"0\r\n\r\n"
