"""Provider stanzas compiled to `ProviderRule`s (schedule/providers.py), tenant stanzas to
the fair queues' `Fairness` (schedule/fair.py), and the provider a domain falls in as
`relay config eval ... domain D provider` shows it (with an MX lookup through the
configured resolver when a match_mx rule needs one, as dispatch does)."""

from __future__ import annotations

from relay.config.model import Config
from relay.config.values import WARMUP_PERIODS, parse_warmup_step
from relay.deliver.dns import DnsResolver
from relay.deliver.route import Router
from relay.schedule.fair import Fairness
from relay.schedule.providers import ProviderRule, classify
from relay.schedule.warmup import date_start
from relay.wiring.daemon import daemon_settings


def provider_rules(config: Config) -> tuple[ProviderRule, ...]:
    """The provider stanzas, in configuration order (the first that matches a domain wins)."""
    rules = []
    for name, block in config.global_block.providers.items():
        values = {key: setting.value for key, setting in block.settings.items()}
        limit = values.get("max_outbound_connections")
        rules.append(
            ProviderRule(
                name,
                match_mx=tuple(str(p).lower().rstrip(".") for p in values.get("match_mx", ())),
                match_domain=tuple(
                    str(p).lower().rstrip(".") for p in values.get("match_domain", ())
                ),
                max_connections=None if limit is None or int(limit) < 0 else int(limit),
                message_throttle=values.get("outbound_throttle_messages"),
                connection_throttle=values.get("outbound_throttle_connections"),
                adaptive_rollup=bool(values.get("adaptive_provider_rollup", False)),
                warmup_steps=tuple(
                    (count, WARMUP_PERIODS[period])
                    for count, period in map(parse_warmup_step, values.get("warmup_schedule", ()))
                ),
                warmup_start=(
                    date_start(str(values["warmup_start"])) if "warmup_start" in values else 0.0
                ),
            )
        )
    return tuple(rules)


async def domain_provider(
    config: Config, domain: str
) -> tuple[str | None, str, tuple[str, ...] | None]:
    """(provider or None, how it was decided, the MX hosts looked up or None)."""
    rules = provider_rules(config)
    domain = domain.rstrip(".").lower()
    by_name = classify(rules, domain, None)
    if by_name is not None:
        return by_name, "match_domain", None
    if not any(rule.match_mx for rule in rules):
        return None, "no provider matches the name", None
    options = daemon_settings(config)
    router = Router(DnsResolver(options.resolv_conf, port=options.dns_port))
    hosts = await router.mx_host_names(domain)
    if hosts is None:
        return None, "MX lookup failed temporarily", None
    provider = classify(rules, domain, hosts)
    how = "match_mx" if provider is not None else "not every MX host matches one provider"
    return provider, how, hosts


def fairness(config: Config) -> Fairness:
    """Tenant stanzas (weight, priority_class) and bulk_min_share, for the fair queues."""
    weights: dict[str, int] = {}
    classes: dict[str, str] = {}
    for name, block in config.global_block.tenants.items():
        settings = block.settings
        if "weight" in settings:
            weights[name] = int(settings["weight"].value)
        if "priority_class" in settings:
            classes[name] = str(settings["priority_class"].value)
    share = config.global_block.settings.get("bulk_min_share")
    return Fairness(
        weights,
        classes,
        min(1.0, float(share.value)) if share else 0.1,
        frozenset(config.global_block.tenants),
    )
