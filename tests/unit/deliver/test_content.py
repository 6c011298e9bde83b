from __future__ import annotations

import email
import email.policy

import pytest

from relay.deliver import DeliverySettings
from relay.deliver.content import downconvert, prepare_content, strip_high_bit

EIGHT = "Subject: t\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nh\u00e9\r\n".encode()
SEVEN = b"Subject: t\r\n\r\nplain\r\n"
MULTIPART = (
    b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
    b"\r\nh\xc3\xa9\r\n--b\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n"
)


def policy(send: str = "no", transform: str = "ifneeded") -> DeliverySettings:
    return DeliverySettings(send_8bitmime=send, transform_8bitmime_content=transform)  # type: ignore[arg-type]


def test_seven_bit_content_is_untouched_in_every_mode() -> None:
    for mode in ("no", "ifneeded", "strict", "strip"):
        prepared = prepare_content(SEVEN, policy("ifavailable", mode), server_8bitmime=False)
        assert prepared.data is SEVEN
        assert prepared.mail_options == ()


@pytest.mark.parametrize(("send", "options"), [("ifavailable", ("BODY=8BITMIME",)), ("no", ())])
def test_server_with_8bitmime_gets_content_as_is(send: str, options: tuple[str, ...]) -> None:
    prepared = prepare_content(EIGHT, policy(send, "strict"), server_8bitmime=True)
    assert prepared.data is EIGHT
    assert prepared.mail_options == options


def test_ifneeded_downconverts_to_quoted_printable() -> None:
    prepared = prepare_content(EIGHT, policy("ifavailable"), server_8bitmime=False)
    assert prepared.data.isascii()
    parsed = email.message_from_bytes(prepared.data, policy=email.policy.default)
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    assert parsed.get_content() == "h\u00e9\r\n" or parsed.get_content() == "h\u00e9\n"


def test_downconvert_multipart_keeps_base64_parts() -> None:
    out = downconvert(MULTIPART)
    assert out.isascii()
    assert b"h=C3=A9" in out
    assert b"AAEC" in out
    assert out.count(b"quoted-printable") == 1


def test_strict_refuses_leftover_8bit_headers_and_ifneeded_sends_them() -> None:
    content = "Subject: h\u00e9\r\n\r\nbody \u00e9\r\n".encode()
    strict = prepare_content(content, policy(transform="strict"), server_8bitmime=False)
    assert strict.refused
    relaxed = prepare_content(content, policy(transform="ifneeded"), server_8bitmime=False)
    assert relaxed.refused is None
    assert b"body =C3=A9" in relaxed.data


def test_strip_and_no() -> None:
    assert prepare_content(EIGHT, policy(transform="strip"), False).data == strip_high_bit(EIGHT)
    assert strip_high_bit(b"\xc3\xa9a") == b"C)a"
    assert prepare_content(EIGHT, policy(transform="no"), False).data is EIGHT
