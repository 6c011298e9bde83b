"""FBL header insertion and ARF (RFC 5965) complaint parsing."""

from __future__ import annotations

import pytest

from relay.dispose.feedback import Complaint, fbl_header, parse_arf

ORIGINAL = (
    fbl_header("mkt-1", "example.com", "M42")
    + b"From: news@sender.test\r\nTo: user@example.com\r\nSubject: offer\r\n\r\nbuy\r\n"
)


def arf(original_part: str, feedback_type: str = "abuse") -> bytes:
    headers_only = original_part == "text/rfc822-headers"
    original = ORIGINAL.split(b"\r\n\r\n")[0] + b"\r\n" if headers_only else ORIGINAL
    return (
        b"From: fbl@isp.test\r\nTo: fbl@relay.test\r\nSubject: complaint\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="XX"\r\n\r\n'
        b"--XX\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n"
        b"--XX\r\nContent-Type: message/feedback-report\r\n\r\n"
        + f"Feedback-Type: {feedback_type}\r\nUser-Agent: isp/1.0\r\nVersion: 1\r\n".encode()
        + f"\r\n--XX\r\nContent-Type: {original_part}\r\n\r\n".encode()
        + original
        + b"\r\n--XX--\r\n"
    )


@pytest.mark.parametrize("part", ["message/rfc822", "text/rfc822-headers"])
def test_complaint_finds_binding_and_domain(part: str) -> None:
    assert parse_arf(arf(part)) == Complaint("mkt-1", "example.com", "abuse", "M42")


def test_feedback_type_is_kept() -> None:
    complaint = parse_arf(arf("message/rfc822", "unsubscribe"))
    assert complaint is not None and complaint.feedback_type == "unsubscribe"


def test_not_an_arf_report() -> None:
    assert parse_arf(ORIGINAL) is None
    assert parse_arf(arf("message/rfc822").replace(b"X-Relay-FBL", b"X-Other")) is None


def test_header_values_are_made_safe() -> None:
    assert fbl_header("b 1", "d;x", "id\r\n") == b"X-Relay-FBL: b=b_1; d=d_x; i=id__\r\n"


@pytest.mark.parametrize("part", ["message/rfc822", "text/rfc822-headers"])
def test_the_recipient_and_tenant_come_back_from_the_header(part: str) -> None:
    marked = fbl_header("b1", "example.com", "M7", "a+b@example.com", "shop; co")
    assert marked == (
        b"X-Relay-FBL: b=b1; d=example.com; i=M7; r=a+b@example.com; t=shop%3B%20co\r\n"
    )
    report = arf(part).replace(fbl_header("mkt-1", "example.com", "M42"), marked)
    assert parse_arf(report) == Complaint(
        "b1", "example.com", "abuse", "M7", "a+b@example.com", "shop; co"
    )


def test_the_reports_original_rcpt_to_is_preferred() -> None:
    report = arf("message/rfc822").replace(
        b"Version: 1\r\n", b"Version: 1\r\nOriginal-Rcpt-To: <user@example.com>\r\n"
    )
    complaint = parse_arf(report)
    assert complaint is not None and complaint.recipient == "user@example.com"
    assert complaint.tenant is None
