"""Typed option values: each type turns a syntax-tree value into Python data or says why not.

Pure functions, no I/O. `ValueProblem` messages list the accepted forms.
"""

from __future__ import annotations

import datetime
import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relay.config.errors import ValueProblem
from relay.config.tree import ListValue, Scalar, Value

TRUE_WORDS = frozenset({"true", "yes", "on", "1", "enable", "enabled"})
FALSE_WORDS = frozenset({"false", "no", "off", "0", "disable", "disabled"})
DURATION_UNITS = {
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "week": 604800.0,
    "weeks": 604800.0,
}
DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")
HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*\.?")


@dataclass(frozen=True, slots=True)
class Throttle:
    """At most `count` events per `period` seconds."""

    count: int
    period: float

    def __str__(self) -> str:
        period = int(self.period) if self.period == int(self.period) else self.period
        return f"{self.count}/{period}"


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int | None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ValueType:
    """How to read one option's value. `convert` raises ValueProblem."""

    name: str  # shown to operators: "integer", "duration", ...
    convert: Callable[[Value], Any]
    forms: str  # the accepted forms, for error messages

    def __call__(self, value: Value) -> Any:
        try:
            return self.convert(value)
        except ValueProblem as err:
            raise ValueProblem(f"{err}; accepted: {self.forms}") from None


def _scalar(value: Value) -> str:
    if isinstance(value, ListValue):
        if len(value.items) == 1:
            return value.items[0].text
        raise ValueProblem("expected a single value, not a list")
    return value.text.strip()


def _items(value: Value) -> list[str]:
    if isinstance(value, ListValue):
        return [item.text.strip() for item in value.items]
    text = value.text.strip()
    return text.split() if text else []


def parse_int(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise ValueProblem(f"{text!r} is not an integer") from None


def parse_number(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise ValueProblem(f"{text!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueProblem(f"{text!r} is not a finite number")
    return number


def parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise ValueProblem(f"{text!r} is not a boolean")


def parse_duration(text: str) -> float:
    """`300`, `"4 hours"`, `"1h30m"`, `"2 days"`, `0.5` -> seconds."""
    if not text:
        raise ValueProblem("empty duration")
    total = 0.0
    pos = 0
    while pos < len(text):
        match = DURATION_PART.match(text, pos)
        if not match or match.end() == pos:
            raise ValueProblem(f"{text!r} is not a duration")
        unit = match.group(2).lower()
        if unit not in DURATION_UNITS:
            raise ValueProblem(f"{text!r}: unknown time unit {match.group(2)!r}")
        total += float(match.group(1)) * DURATION_UNITS[unit]
        pos = match.end()
    return total


def parse_throttle(text: str) -> Throttle | None:
    """`"N"` (per second) or `"N/seconds"`; 0 means no throttle."""
    count_text, slash, period_text = text.partition("/")
    count = parse_int(count_text.strip())
    period = parse_duration(period_text.strip()) if slash else 1.0
    if count < 0 or period <= 0:
        raise ValueProblem(f"{text!r}: count must be >= 0 and period > 0")
    return None if count == 0 else Throttle(count, period)


def parse_ip(text: str) -> str:
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        raise ValueProblem(f"{text!r} is not an IPv4 or IPv6 address") from None


def parse_host_port(text: str) -> HostPort:
    """`host`, `host:port`, `1.2.3.4:25`, `[::1]`, `[::1]:25`, `:25` (all addresses)."""
    port: int | None = None
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueProblem(f"{text!r}: '[' without ']'")
        host = text[1:close]
        rest = text[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueProblem(f"{text!r}: expected ':port' after ']'")
            port = _port(rest[1:], text)
        parse_ip(host)
        return HostPort(host, port)
    if text.count(":") > 1:
        return HostPort(parse_ip(text), None)
    host, colon, port_text = text.partition(":")
    if colon:
        port = _port(port_text, text)
    if host in ("", "*"):
        return HostPort("", port)
    if not HOSTNAME.fullmatch(host):
        raise ValueProblem(f"{text!r}: {host!r} is not a host name or address")
    return HostPort(host.rstrip(".").lower(), port)


def _port(text: str, whole: str) -> int:
    port = parse_int(text)
    if not 0 < port < 65536:
        raise ValueProblem(f"{whole!r}: port {port} is not between 1 and 65535")
    return port


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueProblem(f"{text!r} is not an address or CIDR block") from None


def _regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as err:
        raise ValueProblem(f"{text!r} is not a valid regular expression: {err}") from None
    return text


# ---- the types options use -------------------------------------------------------------


def integer(minimum: int | None = None, maximum: int | None = None) -> ValueType:
    def convert(value: Value) -> int:
        number = parse_int(_scalar(value))
        if minimum is not None and number < minimum:
            raise ValueProblem(f"{number} is below the minimum {minimum}")
        if maximum is not None and number > maximum:
            raise ValueProblem(f"{number} is above the maximum {maximum}")
        return number

    low = "" if minimum is None else f" >= {minimum}"
    return ValueType("integer", convert, f"an integer{low}")


def number(minimum: float | None = None) -> ValueType:
    def convert(value: Value) -> float:
        result = parse_number(_scalar(value))
        if minimum is not None and result < minimum:
            raise ValueProblem(f"{result} is below the minimum {minimum}")
        return result

    return ValueType("number", convert, "a number such as 3 or 0.2")


BOOLEAN = ValueType("boolean", lambda v: parse_bool(_scalar(v)), "true/false, yes/no, on/off, 1/0")


def _duration(value: Value) -> float:
    seconds = parse_duration(_scalar(value))
    return seconds


DURATION = ValueType(
    "duration", _duration, 'seconds (300, 0.5) or "N unit" such as "4 hours", "30m", "1h30m"'
)


def _positive_duration(value: Value) -> float:
    seconds = _duration(value)
    if seconds <= 0:
        raise ValueProblem(f"{_scalar(value)!r} must be more than 0 seconds")
    return seconds


POSITIVE_DURATION = ValueType(
    "duration",
    _positive_duration,
    'seconds above 0 (300, 0.5) or "N unit" such as "4 hours", "30m"',
)


def _hostname(value: Value) -> str:
    text = _scalar(value)
    if not HOSTNAME.fullmatch(text):
        raise ValueProblem(f"{text!r} is not a host name (letters, digits, - and _ between dots)")
    return text


HOST_NAME = ValueType("hostname", _hostname, "a host name such as mta1.example.com")
THROTTLE = ValueType(
    "throttle", lambda v: parse_throttle(_scalar(v)), '"N" per second or "N/seconds"; 0 = none'
)
STRING = ValueType("string", lambda v: _scalar(v), "a word or a quoted string")
IP_ADDRESS = ValueType("address", lambda v: parse_ip(_scalar(v)), "an IPv4 or IPv6 address")
HOST_PORT = ValueType(
    "host", lambda v: parse_host_port(_scalar(v)), 'host, host:port, "1.2.3.4:25", "[::1]:25"'
)
REGEX = ValueType("regex", lambda v: _regex(_scalar(v)), "a regular expression")
STRING_LIST = ValueType("list", lambda v: tuple(_items(v)), '( a "b" c ) or a single value')
WARMUP_PERIODS = {"day": 86400.0, "hour": 3600.0}


def parse_warmup_step(text: str) -> tuple[int, str]:
    """`"N/day"` or `"N/hour"`: (N, period name)."""
    count_text, slash, period = text.partition("/")
    period = period.strip().lower()
    if not slash or period not in WARMUP_PERIODS:
        raise ValueProblem(f'{text!r}: a warm-up step is "N/day" or "N/hour"')
    count = parse_int(count_text.strip())
    if count < 0:
        raise ValueProblem(f"{text!r}: the count must be >= 0")
    return count, period


def _warmup_schedule(value: Value) -> tuple[str, ...]:
    steps = tuple(_items(value))
    if not steps:
        raise ValueProblem("a warm-up schedule needs at least one step")
    for step in steps:
        parse_warmup_step(step)
    return steps


WARMUP_SCHEDULE = ValueType(
    "warm-up schedule", _warmup_schedule, '( "50/day" "100/day" "20/hour" ... )'
)


def _date(value: Value) -> str:
    text = _scalar(value)
    try:
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueProblem(f"{text!r} is not a date (YYYY-MM-DD)") from None


DATE = ValueType("date", _date, '"YYYY-MM-DD" (a UTC day)')
NETWORKS = ValueType(
    "networks",
    lambda v: tuple(parse_network(item) for item in _items(v)),
    '( "127.0.0.0/8" "::1" ) - addresses or CIDR blocks',
)


def enum(*choices: str) -> ValueType:
    lowered = {c.lower(): c for c in choices}

    def convert(value: Value) -> str:
        text = _scalar(value).lower()
        if text not in lowered:
            raise ValueProblem(f"{_scalar(value)!r} is not one of the choices")
        return lowered[text]

    return ValueType("choice", convert, " | ".join(choices))


def enum_list(*choices: str) -> ValueType:
    lowered = {c.lower(): c for c in choices}

    def convert(value: Value) -> tuple[str, ...]:
        result = []
        for item in _items(value):
            if item.lower() not in lowered:
                raise ValueProblem(f"{item!r} is not one of the choices")
            result.append(lowered[item.lower()])
        if not result:
            raise ValueProblem("the list is empty")
        return tuple(result)

    return ValueType("choices", convert, "a list of " + " | ".join(choices))


def bounds(inner: ValueType) -> ValueType:
    """`( low high )` for adaptive_* options."""

    def convert(value: Value) -> tuple[Any, Any]:
        if not isinstance(value, ListValue) or len(value.items) != 2:
            raise ValueProblem("expected a list of two values")
        low = inner(value.items[0])
        high = inner(value.items[1])
        if low is None or high is None:
            raise ValueProblem("bounds cannot be empty")
        if _bound_key(low) > _bound_key(high):
            raise ValueProblem(f"low bound {value.items[0].text} is above high bound")
        return (low, high)

    return ValueType("bounds", convert, f"( low high ), each {inner.forms}")


def _bound_key(value: Any) -> float:
    if isinstance(value, Throttle):
        return value.count / value.period
    return float(value)


def _blackhole(value: Value) -> str:
    text = _scalar(value).lower()
    if text in ("inline", "internal"):
        return text
    return "inline" if parse_bool(text) else "false"


BLACKHOLE = ValueType("blackhole", _blackhole, "false | true | inline | internal")


def action(value: Value) -> tuple[str, ...]:
    """A sweep rule action: ("throttle" "down"|"up"), ("suspend" "duration"), ("blackhole" d)."""
    items = _items(value)
    if not items:
        raise ValueProblem("empty action")
    verb = items[0].lower()
    if verb == "throttle" and len(items) == 2 and items[1].lower() in ("down", "up"):
        return ("throttle", items[1].lower())
    if verb in ("suspend", "blackhole") and len(items) in (1, 2):
        if len(items) == 2:
            parse_duration(items[1])
        return (verb, *items[1:])
    raise ValueProblem(f"{' '.join(items)!r} is not an action")


ACTION = ValueType(
    "action",
    action,
    '("throttle" "down"), ("throttle" "up"), ("suspend" "4 hours"), ("blackhole" "1 hour")',
)


def display(value: Any) -> str:
    """How `config eval` prints a value."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    if isinstance(value, tuple):
        return "( " + " ".join(_quote_item(item) for item in value) + " )"
    return str(value)


def _quote_item(item: Any) -> str:
    text = display(item)
    return text if isinstance(item, (int, float)) else f'"{text}"'


def scalar_text(value: Value) -> str:
    """The text of a scalar value (lists joined by spaces), for messages."""
    if isinstance(value, Scalar):
        return value.text
    return "( " + " ".join(item.text for item in value.items) + " )"
