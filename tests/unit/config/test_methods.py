"""delivery_method and the http_* options: what is read, what is refused and why."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from relay.config import Config, ConfigError
from relay.config import options as o
from relay.config.errors import ValueProblem
from relay.config.tree import ListValue, Scalar


def s(text: str) -> Scalar:
    return Scalar(text, True)


def lst(*items: str) -> ListValue:
    return ListValue(tuple(Scalar(i, True) for i in items))


@pytest.mark.parametrize(
    ("value", "methods"),
    [
        (s("esmtp"), ("ESMTP",)),
        (s("SMTP"), ("SMTP",)),
        (lst("ESMTP", "smtp"), ("ESMTP", "SMTP")),
        (s("lmtp"), ("LMTP",)),
        (s("HTTP"), ("HTTP",)),
    ],
)
def test_delivery_methods(value: Scalar | ListValue, methods: tuple[str, ...]) -> None:
    assert o.OPTIONS["delivery_method"].type(value) == methods


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (s("ECSTREAM"), "proprietary"),
        (s("apn"), "push"),
        (s("GCM"), "retired"),
        (s("MM7"), "multimedia"),
        (lst("LMTP", "ESMTP"), "LMTP cannot be combined"),
        (lst("SMTP", "HTTP"), "HTTP cannot be combined"),
        (s("UUCP"), "not a delivery method"),
    ],
)
def test_delivery_methods_relay_cannot_use(value: Scalar | ListValue, why: str) -> None:
    with pytest.raises(ValueProblem, match=why):
        o.OPTIONS["delivery_method"].type(value)


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("127.0.0.8", "http://127.0.0.8"),
        ("127.0.0.8:8080", "http://127.0.0.8:8080"),
        ("Hooks.Example.test", "http://hooks.example.test"),
        ("https://hooks.example.test/", "https://hooks.example.test"),
        ("HTTP://[::1]:8080", "http://[::1]:8080"),
        ("::1", "http://[::1]"),
    ],
)
def test_http_host_becomes_the_base_url(text: str, url: str) -> None:
    assert o.OPTIONS["http_host"].type(s(text)) == url


@pytest.mark.parametrize("text", ["host/path", "http://", "bad host", "h:99999", "ftp://x"])
def test_bad_http_hosts(text: str) -> None:
    with pytest.raises(ValueProblem):
        o.OPTIONS["http_host"].type(s(text))


def test_http_method_version_uri_and_credentials() -> None:
    assert o.OPTIONS["http_method"].type(s("post")) == "POST"
    assert o.OPTIONS["http_method"].type(s("PUT")) == "PUT"
    with pytest.raises(ValueProblem, match="request body"):
        o.OPTIONS["http_method"].type(s("GET"))
    assert o.OPTIONS["http_version"].type(s("1.0")) == "1.0"
    with pytest.raises(ValueProblem, match="no headers"):
        o.OPTIONS["http_version"].type(s("0.9"))
    assert o.OPTIONS["http_uri"].type(s("")) == "/"
    assert o.OPTIONS["http_uri"].type(s("/gcm/send?x=1")) == "/gcm/send?x=1"
    with pytest.raises(ValueProblem):
        o.OPTIONS["http_uri"].type(s("gcm/send"))
    assert o.OPTIONS["http_basic_auth"].type(s("user:pa ss:word")) == "user:pa ss:word"
    for bad in ("nopassword", ":nouser", "u:p\nX-Injected: 1"):
        with pytest.raises(ValueProblem):
            o.OPTIONS["http_basic_auth"].type(s(bad))


def test_the_options_are_acted_on_now() -> None:
    for name in ("delivery_method", "lmtp_port", "xclient", "http_host", "http_uri"):
        assert o.OPTIONS[name].status == "active", name
    assert {"http_method", "http_version", "http_basic_auth"} <= o.ACTIVE


def test_a_bad_method_names_file_line_and_option(conf: Callable[[str], Config]) -> None:
    with pytest.raises(ConfigError) as caught:
        conf('binding "b" {\n  delivery_method = "ECSTREAM"\n}\n')
    (problem,) = caught.value.problems
    assert problem.location.line == 2 and problem.option == "delivery_method"
    assert "ECStream" in problem.message


def test_no_warning_for_the_method_options(conf: Callable[[str], Config]) -> None:
    config = conf(
        'delivery_method = "HTTP"\nhttp_host = "127.0.0.8:8080"\nhttp_uri = "/in"\n'
        'lmtp_port = 24\nxclient = "ifavailable"\n'
    )
    assert not [w for w in config.warnings if "ignored" in w.message or "yet" in w.message]


def test_http_without_http_host_is_an_error_where_the_method_is_set(
    conf: Callable[[str], Config],
) -> None:
    with pytest.raises(ConfigError) as caught:
        conf(
            'binding_group "g" {\n  binding "b1" { }\n  domain "web.test" {\n'
            '    delivery_method = "HTTP"\n  }\n}\n'
        )
    (problem,) = caught.value.problems
    assert problem.location.line == 4 and problem.option == "delivery_method"
    assert 'needs http_host (none for binding "b1" domain "web.test")' in problem.message
    conf(  # set above, in the group: fine
        'binding_group "g" {\n  http_host = "127.0.0.8:80"\n  binding "b1" { }\n'
        '  domain "web.test" { delivery_method = "HTTP" }\n}\n'
    )


def test_tls_required_with_smtp_only_is_an_error(conf: Callable[[str], Config]) -> None:
    with pytest.raises(ConfigError) as caught:
        conf('tls = "required"\nbinding "b1" {\n  delivery_method = "SMTP"\n}\n')
    (problem,) = caught.value.problems
    assert problem.option == "tls" and problem.location.line == 1
    assert "HELO offers no STARTTLS" in problem.message
    conf('tls = "required"\nbinding "b1" {\n  delivery_method = ( "ESMTP" "SMTP" )\n}\n')
