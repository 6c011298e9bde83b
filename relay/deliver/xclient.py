"""XCLIENT (Postfix XCLIENT_README): tell the next hop who injected the message. Pure.

    line = xclient_line(offered, ("192.0.2.7", "client.example"))
    # b"XCLIENT NAME=[UNAVAILABLE] ADDR=192.0.2.7 HELO=client.example\\r\\n"

The server lists the attributes it accepts after the keyword in its EHLO reply
("250-XCLIENT NAME ADDR PROTO HELO"); relay sends only those of NAME, ADDR and HELO, in the
order Postfix's SMTP proxy sends them. NAME is always [UNAVAILABLE]: relay does not look up
the client's reverse name at injection. An unknown address or HELO (relay's own mail, a
message spooled before relay kept them) is [UNAVAILABLE] too, so a message never inherits
the previous message's client on a reused connection. Values are xtext (RFC 3461 4).
After a 220 the session starts over: the client must send EHLO again.
"""

from __future__ import annotations

__all__ = ["UNAVAILABLE", "XCLIENT_OK", "xclient_line", "xtext"]

UNAVAILABLE = "[UNAVAILABLE]"
XCLIENT_OK = 220  # the next hop accepted the attributes and greets anew
_ATTRIBUTES = ("NAME", "ADDR", "HELO")  # Postfix smtpd_proxy's order
_MAX_LINE = 512  # Postfix's smtpd line limit for XCLIENT


def xtext(value: str) -> str:
    """RFC 3461 xtext: "!".."~" except "+" and "=" as they are, every other byte +HH."""
    out: list[str] = []
    for byte in value.encode("utf-8"):
        if 0x21 <= byte <= 0x7E and byte not in (0x2B, 0x3D):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)


def _value(value: str | None) -> str:
    return UNAVAILABLE if not value else xtext(value)


def _address(ip: str | None) -> str:
    if not ip:
        return UNAVAILABLE
    return f"IPV6:{ip}" if ":" in ip else ip


def xclient_line(offered: str, client: tuple[str, str | None] | None) -> bytes | None:
    """The XCLIENT command for `client` ((IP, HELO) or None when unknown), given the
    parameters of the EHLO reply's XCLIENT line; None when the server accepts none of the
    attributes relay has. A HELO too long for the line goes as [UNAVAILABLE]."""
    names = {name.upper() for name in offered.split()} or set(_ATTRIBUTES)
    ip, helo = client if client is not None else (None, None)
    values = {"NAME": UNAVAILABLE, "ADDR": _address(ip), "HELO": _value(helo)}
    parts = [f"{name}={values[name]}" for name in _ATTRIBUTES if name in names]
    if not parts:
        return None
    line = "XCLIENT " + " ".join(parts) + "\r\n"
    if len(line) > _MAX_LINE:
        line = line.replace(f"HELO={values['HELO']}", f"HELO={UNAVAILABLE}")
    return line.encode("ascii")
