"""The value types of the delivery-method options: `delivery_method` and `http_*`.

A method relay cannot deliver with, or a combination it cannot mean, is a configuration
error naming the option (never mail sent some other way than the operator asked):

    delivery_method = ( "ESMTP" "SMTP" )   # EHLO, and HELO if EHLO is refused (the default)
    delivery_method = "SMTP"               # HELO only: no extensions, no STARTTLS
    delivery_method = "LMTP"               # LHLO to lmtp_port, a reply per recipient
    delivery_method = "HTTP"               # relay's own: the message as an HTTP request body
"""

from __future__ import annotations

from relay.config.errors import ValueProblem
from relay.config.tree import ListValue, Value
from relay.config.values import ValueType, parse_host_port

__all__ = ["DELIVERY_METHOD", "HTTP_BASIC_AUTH", "HTTP_HOST", "HTTP_METHOD", "HTTP_URI"]
__all__ += ["HTTP_VERSION"]

_METHODS = {m.lower(): m for m in ("ESMTP", "SMTP", "LMTP", "HTTP")}
_ALONE = ("LMTP", "HTTP")  # a protocol of its own: no fallback to or from SMTP
_NOT_SUPPORTED = {
    "ecstream": "ECStream is Momentum's proprietary protocol",
    "apn": "APN is Apple's push service, not mail",
    "gcm": "GCM is a retired Google push service",
    "mm7": "MM7 is a multimedia messaging gateway protocol",
}


def _items(value: Value) -> list[str]:
    if isinstance(value, ListValue):
        return [item.text.strip() for item in value.items]
    return value.text.split()


def _scalar(value: Value) -> str:
    items = _items(value)
    if len(items) != 1:
        raise ValueProblem("expected a single value")
    return items[0]


def _delivery_method(value: Value) -> tuple[str, ...]:
    methods: list[str] = []
    for item in _items(value):
        lowered = item.lower()
        if lowered in _NOT_SUPPORTED:
            raise ValueProblem(f"relay does not deliver over {item}: {_NOT_SUPPORTED[lowered]}")
        if lowered not in _METHODS:
            raise ValueProblem(f"{item!r} is not a delivery method")
        if _METHODS[lowered] not in methods:
            methods.append(_METHODS[lowered])
    if not methods:
        raise ValueProblem("the list is empty")
    for alone in _ALONE:
        if alone in methods and len(methods) > 1:
            raise ValueProblem(f"{alone} cannot be combined with another method")
    return tuple(methods)


DELIVERY_METHOD = ValueType(
    "delivery method", _delivery_method, 'ESMTP | SMTP | ( "ESMTP" "SMTP" ) | LMTP | HTTP'
)


def _http_host(value: Value) -> str:
    """`host`, `host:port`, `[::1]:8080`, or with `http://` / `https://` in front; the base
    URL delivery posts to (`http://host:port`)."""
    text = _scalar(value)
    scheme = "http"
    for prefix in ("http://", "https://"):
        if text.lower().startswith(prefix):
            scheme, text = prefix[:-3], text[len(prefix) :]
    text = text.rstrip("/")
    if "/" in text:
        raise ValueProblem(f"{text!r}: the path goes in http_uri")
    address = parse_host_port(text)
    if not address.host:
        raise ValueProblem(f"{text!r} names no host")
    host = f"[{address.host}]" if ":" in address.host else address.host
    port = "" if address.port is None else f":{address.port}"
    return f"{scheme}://{host}{port}"


HTTP_HOST = ValueType(
    "http host", _http_host, '"host", "host:port", "http://host:port" or "https://host"'
)


def _http_uri(value: Value) -> str:
    text = _scalar(value) if _items(value) else ""
    if not text:
        return "/"
    if not text.startswith("/") or any(c.isspace() or ord(c) < 0x21 for c in text):
        raise ValueProblem(f"{text!r} is not a path starting with '/'")
    return text


HTTP_URI = ValueType("http uri", _http_uri, 'a path such as "/mail/inbound"')


def _http_method(value: Value) -> str:
    text = _scalar(value).upper()
    if text in ("GET", "DELETE", "SET"):
        raise ValueProblem(f"{text}: relay sends the message as the request body")
    if text not in ("POST", "PUT"):
        raise ValueProblem(f"{text!r} is not an HTTP method relay delivers with")
    return text


HTTP_METHOD = ValueType("http method", _http_method, "POST | PUT")


def _http_version(value: Value) -> str:
    text = _scalar(value)
    if text == "0.9":
        raise ValueProblem("HTTP/0.9 has no headers and no request body")
    if text not in ("1.0", "1.1"):
        raise ValueProblem(f"{text!r} is not an HTTP version")
    return text


HTTP_VERSION = ValueType("http version", _http_version, '"1.0" | "1.1"')


def _http_basic_auth(value: Value) -> str:
    text = _scalar(value) if isinstance(value, ListValue) else value.text
    user, colon, _ = text.partition(":")
    if not colon or not user:
        raise ValueProblem("expected user:password")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ValueProblem("control characters in the credentials")
    return text


HTTP_BASIC_AUTH = ValueType("credentials", _http_basic_auth, '"user:password"')
