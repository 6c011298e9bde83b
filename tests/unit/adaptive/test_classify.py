import pytest

from relay.adaptive.classify import BounceClass, classify

B = BounceClass

TABLE = [
    # Gmail
    (
        550,
        "5.1.1",
        "The email account that you tried to reach does not exist.",
        B.INVALID_RECIPIENT,
    ),
    (452, "4.2.2", "The email account that you tried to reach is over quota.", B.MAILBOX_FULL),
    (552, "5.2.2", "The email account that you tried to reach is over quota.", B.MAILBOX_FULL),
    (
        550,
        "5.7.1",
        "Our system has detected that this message is likely unsolicited mail.",
        B.SPAM_CONTENT,
    ),
    (
        550,
        "5.7.26",
        "This message does not have authentication information or fails to pass "
        "authentication checks (SPF or DKIM).",
        B.MAIL_BLOCK,
    ),
    (552, "5.3.4", "Your message exceeded Google's message size limits.", B.TOO_LARGE),
    (
        421,
        "4.7.28",
        "Gmail has detected an unusual rate of mail originating from your IP",
        B.TRANSIENT,
    ),
    # Microsoft
    (
        550,
        "5.7.1",
        "Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your "
        "Internet service provider since part of their network is on our block list (S3150).",
        B.SPAM_BLOCK,
    ),
    (550, "5.5.0", "Requested action not taken: mailbox unavailable", B.INVALID_RECIPIENT),
    (550, "5.4.1", "Recipient address rejected: Access denied.", B.INVALID_RECIPIENT),
    (421, "4.7.0", "Too many connections from 192.0.2.1, try again later", B.TRANSIENT),
    # Yahoo
    (
        421,
        "4.7.0",
        "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected "
        "volume or user complaints",
        B.TRANSIENT,
    ),
    (
        554,
        None,
        "delivery error: dd This user doesn't have a yahoo.com account",
        B.INVALID_RECIPIENT,
    ),
    (
        553,
        "5.7.1",
        "[BL21] Connections will not be accepted from 192.0.2.1, because the ip is "
        "in Spamhaus's list",
        B.SPAM_BLOCK,
    ),
    # generic
    (550, None, "No such user here", B.INVALID_RECIPIENT),
    (554, "5.7.1", "<a@example.com>: Relay access denied", B.RELAYING_DENIED),
    (552, None, "Message size exceeds fixed maximum message size", B.TOO_LARGE),
    (550, None, "Attachment file type not allowed", B.PROHIBITED_ATTACHMENT),
    (550, None, "Message rejected as spam", B.SPAM_CONTENT),
    (550, None, "I am out of the office until Monday", B.AUTO_REPLY),
    (None, None, "Connection timed out", B.TIMEOUT),
    (451, "4.4.2", "[internal] connection closed by remote host", B.TIMEOUT),
    (550, None, "Host not found", B.DNS_FAILURE),
    (451, None, "Requested action aborted: local error in processing", B.TRANSIENT),
    (550, None, "Computer says no", B.UNDETERMINED),
    (550, "5.1.1", "Computer says no", B.INVALID_RECIPIENT),  # the enhanced code decides
    (550, None, "550 5.1.1 <x@example.com> computer says no", B.INVALID_RECIPIENT),
    (450, "4.2.1", "Computer says later", B.TRANSIENT),
    (550, None, "Your IP is blocked", B.MAIL_BLOCK),
]


@pytest.mark.parametrize(("code", "enhanced", "text", "expected"), TABLE)
def test_classification_table(
    code: int | None, enhanced: str | None, text: str, expected: BounceClass
) -> None:
    result = classify(code, enhanced, text)
    assert result.bounce_class is expected, result.rule


def test_result_carries_code_category_and_rule() -> None:
    result = classify(550, "5.1.1", "user unknown")
    assert result.code == 10
    assert result.category == "Hard"
    assert result.name == "Invalid Recipient"
    assert result.rule == "text:invalid_recipient"
    with pytest.raises(AttributeError):
        result.rule = "x"  # type: ignore[misc]


def test_invalid_recipient_text_needs_a_permanent_reply() -> None:
    # "user unknown" in a 4xx is a temporary lookup failure, not a dead address.
    assert classify(450, None, "user unknown, try later").bounce_class is B.TRANSIENT


def test_every_class_of_the_reference_table_exists() -> None:
    assert sorted(int(c) for c in BounceClass) == [
        1,
        10,
        20,
        21,
        22,
        23,
        24,
        25,
        30,
        40,
        50,
        51,
        52,
        53,
        54,
        60,
        70,
        80,
        90,
        100,
    ]
