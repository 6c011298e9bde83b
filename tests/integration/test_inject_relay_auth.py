"""Who may relay: relay_hosts clients, or clients that authenticated over TLS. No one else."""

from __future__ import annotations

from pathlib import Path

import aiosmtplib
import pytest

from relay.inject import InjectSettings
from tests.integration.inject_helpers import (
    OUTSIDE,
    PASSWORD,
    USER,
    DirSpool,
    RawClient,
    b64,
    credentials_file,
    make_settings,
    plain_token,
    send_message,
    serving,
    tls_files,
)

OPEN_RELAY_ATTEMPTS = [
    "<victim@example.com>",
    "<user%victim.example@relay.test>",
    "<@relay.test:victim@example.com>",
    "<@a,@b:victim@example.com>",
    '<"victim@example.com"@relay.test>',
    '<"user%victim.example">@relay.test',
    "<victim@example.com@relay.test>",
    "<victim!example.com@relay.test>",
    "victim@example.com",
    "<postmaster>",
    "<>",
]


def _auth_settings(tmp_path: Path) -> tuple[InjectSettings, object]:
    tls = tls_files(tmp_path)
    settings = make_settings(
        tls_certificate=tls.cert,
        tls_key=tls.key,
        auth_credentials_file=credentials_file(tmp_path),
    )
    return settings, tls.client_context


@pytest.mark.parametrize("rcpt", OPEN_RELAY_ATTEMPTS)
async def test_outside_client_cannot_relay(tmp_path: Path, rcpt: str) -> None:
    spool = DirSpool(tmp_path)
    async with serving(make_settings(), spool) as (_, port):
        client = await RawClient.connect(port, source=OUTSIDE)
        await client.greet()
        assert (await client.command("MAIL FROM:<someone@example.test>"))[0] == 250
        code, text = await client.command(f"RCPT TO:{rcpt}")
        assert code in (550, 553), text
        assert text[4:9] in ("5.7.1", "5.1.3"), text
        assert (await client.command("DATA"))[0] == 503
        await client.close()
    assert spool.messages == []


async def test_outside_client_gets_550_5_7_1(tmp_path: Path) -> None:
    async with serving(make_settings(), DirSpool(tmp_path)) as (_, port):
        client = await RawClient.connect(port, source=OUTSIDE)
        await client.greet()
        await client.command("MAIL FROM:<someone@example.test>")
        _, text = await client.command("RCPT TO:<victim@example.com>")
        assert text.startswith("550 5.7.1"), text
        await client.close()


async def test_listener_relay_hosts_override_global(tmp_path: Path) -> None:
    from relay.inject import ListenerSettings
    from relay.inject.settings import parse_network

    listener = ListenerSettings("127.0.0.1:0", relay_hosts=(parse_network("127.0.0.9"),))
    spool = DirSpool(tmp_path)
    async with serving(make_settings(listeners=(listener,)), spool) as (_, port):
        inside = await RawClient.connect(port, source=OUTSIDE)
        await inside.greet()
        code, _ = await send_message(inside, b"Subject: x\r\n\r\nx\r\n.\r\n")
        assert code == 250
        await inside.close()
        outside = await RawClient.connect(port)  # 127.0.0.1: not in this listener's list
        await outside.greet()
        await outside.command("MAIL FROM:<s@example.test>")
        assert (await outside.command("RCPT TO:<r@example.com>"))[0] == 550
        await outside.close()
    assert len(spool.messages) == 1


async def test_auth_before_tls_is_538(tmp_path: Path) -> None:
    settings, _ = _auth_settings(tmp_path)
    async with serving(settings, DirSpool(tmp_path)) as (_, port):
        client = await RawClient.connect(port, source=OUTSIDE)
        await client.greet()
        _, text = await client.command(f"AUTH PLAIN {plain_token(USER, PASSWORD)}")
        assert text.startswith("538 5.7.11"), text
        _, text = await client.command("AUTH LOGIN")
        assert text.startswith("538 5.7.11"), text
        await client.close()


async def test_ehlo_advertises_auth_only_after_starttls(tmp_path: Path) -> None:
    settings, context = _auth_settings(tmp_path)
    async with serving(settings, DirSpool(tmp_path)) as (_, port):
        client = await RawClient.connect(port, source=OUTSIDE)
        await client.reply()
        _, before = await client.command("EHLO client.test")
        assert "STARTTLS" in before and "AUTH" not in before
        assert "250-SIZE " in before and "ENHANCEDSTATUSCODES" in before
        await client.starttls(context)  # type: ignore[arg-type]
        _, after = await client.command("EHLO client.test")
        assert "250-AUTH LOGIN PLAIN" in after and "STARTTLS" not in after
        await client.close()


async def test_auth_plain_over_starttls_then_relaying_works(tmp_path: Path) -> None:
    settings, context = _auth_settings(tmp_path)
    spool = DirSpool(tmp_path)
    async with serving(settings, spool) as (_, port):
        client = await RawClient.connect(port, source=OUTSIDE)
        await client.greet()
        await client.starttls(context)  # type: ignore[arg-type]
        await client.command("EHLO client.test")
        code, text = await client.command(f"AUTH PLAIN {plain_token(USER, PASSWORD)}")
        assert text.startswith("235 2.7.0"), text
        code, text = await send_message(
            client,
            b"Subject: x\r\n\r\nx\r\n.\r\n",
            recipients=("<victim@example.com>", '<"odd local"@example.com>'),
        )
        assert code == 250, text
        await client.close()
    [message] = spool.messages
    assert message.recipients == ("victim@example.com", '"odd local"@example.com')
    assert b"with ESMTPSA id" in message.content
    assert b"from client.test ([127.0.0.9])" in message.content


async def test_auth_login_over_starttls_then_relaying_works(tmp_path: Path) -> None:
    settings, context = _auth_settings(tmp_path)
    spool = DirSpool(tmp_path)
    async with serving(settings, spool) as (_, port):
        client = await RawClient.connect(port, source=OUTSIDE)
        await client.greet()
        await client.starttls(context)  # type: ignore[arg-type]
        await client.command("EHLO client.test")
        code, text = await client.command("AUTH LOGIN")
        assert code == 334, text
        code, text = await client.command(b64(USER))
        assert code == 334, text
        code, text = await client.command(b64(PASSWORD))
        assert text.startswith("235 2.7.0"), text
        code, text = await send_message(client, b"Subject: x\r\n\r\nx\r\n.\r\n")
        assert code == 250, text
        await client.close()
    assert len(spool.messages) == 1


@pytest.mark.parametrize(("user", "password"), [(USER, "wrong"), ("mallory", PASSWORD), ("", "")])
async def test_wrong_credentials_are_535_and_do_not_relay(
    tmp_path: Path, user: str, password: str
) -> None:
    settings, context = _auth_settings(tmp_path)
    async with serving(settings, DirSpool(tmp_path)) as (_, port):
        client = await RawClient.connect(port, source=OUTSIDE)
        await client.greet()
        await client.starttls(context)  # type: ignore[arg-type]
        await client.command("EHLO client.test")
        _, text = await client.command(f"AUTH PLAIN {plain_token(user, password)}")
        assert text.startswith("535 5.7.8"), text
        await client.command("MAIL FROM:<s@example.test>")
        _, text = await client.command("RCPT TO:<victim@example.com>")
        assert text.startswith("550 5.7.1"), text
        await client.close()


async def test_aiosmtplib_login_with_starttls(tmp_path: Path) -> None:
    settings, context = _auth_settings(tmp_path)
    spool = DirSpool(tmp_path)
    async with serving(settings, spool) as (_, port):
        smtp = aiosmtplib.SMTP(
            hostname="127.0.0.1",
            port=port,
            source_address=(OUTSIDE, 0),
            start_tls=True,
            tls_context=context,  # type: ignore[arg-type]
            timeout=2,
        )
        async with smtp:
            await smtp.login(USER, PASSWORD)
            errors, _ = await smtp.sendmail(
                "s@example.test", ["r@example.com"], b"S: x\r\n\r\nb\r\n"
            )
            assert errors == {}
    assert len(spool.messages) == 1


async def test_auth_without_credentials_file_is_not_offered(tmp_path: Path) -> None:
    tls = tls_files(tmp_path)
    settings = make_settings(tls_certificate=tls.cert, tls_key=tls.key)
    async with serving(settings, DirSpool(tmp_path)) as (_, port):
        client = await RawClient.connect(port, source=OUTSIDE)
        await client.greet()
        await client.starttls(tls.client_context)
        _, text = await client.command("EHLO client.test")
        assert "AUTH" not in text
        _, text = await client.command(f"AUTH PLAIN {plain_token(USER, PASSWORD)}")
        assert text.startswith("504 5.5.4"), text
        await client.close()
