"""Delivery-method settings that cannot work together, found at load time rather than as a
queue that never drains: delivery_method HTTP without http_host, and tls = required with
delivery_method SMTP (HELO offers no STARTTLS).

Effective values follow the fallback chain, so each binding is checked on its own and for
each domain named in an exact domain stanza; a /regex/ domain's combination is only known
at delivery (which fails it temporarily, naming the same problem). Nothing is walked unless
some scope sets delivery_method to HTTP or to SMTP alone.
"""

from __future__ import annotations

from relay.config.errors import Location, Problem
from relay.config.model import Block, Config
from relay.config.resolve import scoped

__all__ = ["method_problems"]

_OPTION = "delivery_method"


def _blocks(config: Config) -> list[Block]:
    blocks: list[Block] = []
    for block in config.all_blocks():
        blocks.append(block)
        if block.domains is not None:
            blocks.extend(block.domains.exact.values())
            blocks.extend(found for _, found in block.domains.patterns)
    return blocks


def _methods_to_check(config: Config) -> bool:
    for block in _blocks(config):
        setting = block.settings.get(_OPTION)
        if setting is not None and ("HTTP" in setting.value or setting.value == ("SMTP",)):
            return True
    return False


def method_problems(config: Config) -> list[Problem]:
    """One problem per offending setting (however many bindings and domains it reaches)."""
    if not _methods_to_check(config):
        return []
    domains: list[str | None] = [None]
    for block in config.all_blocks():
        if block.domains is not None:
            domains.extend(sorted(block.domains.exact))
    found: dict[tuple[Location | None, str], Problem] = {}
    for binding in config.bindings:
        for domain in dict.fromkeys(domains):
            get = scoped(config, binding=binding, domain=domain)
            method = get(_OPTION)
            where = f'binding "{binding}"' + (f' domain "{domain}"' if domain else "")
            if "HTTP" in method.value and get("http_host").value is None:
                key = (method.location, "http_host")
                found.setdefault(
                    key,
                    Problem(
                        method.location or Location("<built-in>", 0, 0),
                        f"delivery_method HTTP needs http_host (none for {where})",
                        _OPTION,
                        hint='e.g. http_host = "127.0.0.1:8080" in the same scope',
                    ),
                )
            tls = get("tls")
            if method.value == ("SMTP",) and tls.value == "required":
                key = (tls.location, "tls")
                found.setdefault(
                    key,
                    Problem(
                        tls.location or Location("<built-in>", 0, 0),
                        f"tls = required cannot work with delivery_method SMTP for {where}: "
                        "HELO offers no STARTTLS",
                        "tls",
                        hint='use delivery_method = "ESMTP", or tls = "ifavailable" / "no"',
                    ),
                )
    return list(found.values())
