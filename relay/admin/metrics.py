"""Prometheus metrics, gathered from the components' statistics at scrape time.

prometheus-client renders the exposition format; nothing is counted twice on the hot path:
the numbers are the ones the spool, scheduler and event log keep anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from relay.admin.view import DaemonView
from relay.spool.statistics import combine

if TYPE_CHECKING:
    from prometheus_client.core import Metric


class RelayCollector(Collector):
    def __init__(self, daemon: DaemonView) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        daemon = self.daemon
        events = CounterMetricFamily(
            "relay_events", "Events in the event log since start", labels=["event"]
        )
        for kind, count in sorted(daemon.event_counts().items()):
            events.add_metric([kind], count)
        yield events
        parts = daemon.spool_statistics_cached()
        if parts:
            # The daemon's own spool now, the workers' shards as last asked (just before).
            spool = combine(parts.values())
            yield GaugeMetricFamily(
                "relay_spool_messages", "Messages in the spool", value=spool.messages
            )
            yield GaugeMetricFamily(
                "relay_spool_bytes", "Content bytes in the spool", value=spool.bytes
            )
            yield GaugeMetricFamily(
                "relay_spool_resident_bodies",
                "Message bodies in memory",
                value=spool.resident_bodies,
            )
            yield CounterMetricFamily(
                "relay_spool_fsyncs", "Spool fsyncs since start", value=spool.fsyncs
            )
        stats = daemon.queue_counts()
        if stats is not None:
            queue = GaugeMetricFamily("relay_queue_jobs", "Jobs by queue tier", labels=["tier"])
            queue.add_metric(["scheduled"], stats.scheduled)
            queue.add_metric(["due"], stats.due)
            queue.add_metric(["ready"], stats.ready)
            queue.add_metric(["in_flight"], stats.in_flight)
            yield queue
            yield GaugeMetricFamily(
                "relay_outbound_connections", "Open outbound connections", value=stats.connections
            )
            outcomes = CounterMetricFamily(
                "relay_recipients", "Recipient outcomes since start", labels=["outcome"]
            )
            outcomes.add_metric(["delivered"], stats.delivered)
            outcomes.add_metric(["deferred"], stats.deferred)
            outcomes.add_metric(["failed"], stats.failed)
            yield outcomes
            if stats.tenants:
                # Configured tenants and the first 100 others seen (schedule/tenant_counts.py)
                per_tenant = CounterMetricFamily(
                    "relay_tenant_recipients",
                    "Recipient outcomes since start per tenant",
                    labels=["tenant", "outcome"],
                )
                for tenant, row in sorted(stats.tenants.items()):
                    for outcome, count in row.items():
                        per_tenant.add_metric([tenant, outcome], count)
                yield per_tenant
            if stats.campaigns:
                # The first 100 campaigns seen, the others as _other (tenant_counts.py)
                per_campaign = CounterMetricFamily(
                    "relay_campaign_recipients",
                    "Recipient outcomes since start per campaign",
                    labels=["campaign", "outcome"],
                )
                for campaign, row in sorted(stats.campaigns.items()):
                    for outcome, count in row.items():
                        per_campaign.add_metric([campaign, outcome], count)
                yield per_campaign
        hooks = daemon.webhooks()
        if hooks:
            sent = CounterMetricFamily(
                "relay_webhook_events", "Events a webhook delivered (2xx)", labels=["webhook"]
            )
            failed = CounterMetricFamily(
                "relay_webhook_failures", "Failed webhook POSTs", labels=["webhook"]
            )
            lag = GaugeMetricFamily(
                "relay_webhook_lag_bytes",
                "Event log bytes a webhook has not read",
                labels=["webhook"],
            )
            for name, counts in sorted(hooks.items()):
                sent.add_metric([name], counts["sent"])
                failed.add_metric([name], counts["failures"])
                lag.add_metric([name], counts["lag_bytes"])
            yield sent
            yield failed
            yield lag
        suspended = GaugeMetricFamily(
            "relay_suspended_binding_domains",
            "Binding x domain pairs suspended now",
            labels=["binding"],
        )
        for binding, count in sorted(daemon.suspended_counts().items()):
            suspended.add_metric([binding], count)
        yield suspended
        # Scraped inside the daemon's event loop: a number that climbs under steady traffic
        # (or stays up after it) is a leaked task (tests/reliability/test_under_load.py).
        yield GaugeMetricFamily(
            "relay_asyncio_tasks",
            "asyncio tasks alive in the daemon's event loop",
            value=len(asyncio.all_tasks()),
        )
        cluster = daemon.cluster_status()
        if cluster is not None:
            yield GaugeMetricFamily(
                "relay_cluster_redis_up",
                "1 while Redis answers (cluster limits shared), 0 on local shares",
                value=int(cluster.redis_up),
            )
            yield CounterMetricFamily(
                "relay_cluster_fallbacks",
                "Times Redis became unavailable and this node fell back to its local shares",
                value=cluster.fallbacks,
            )
            yield GaugeMetricFamily(
                "relay_cluster_live_nodes",
                "Live nodes at the last heartbeat (local shares divide by it)",
                value=cluster.live_nodes,
            )


def render_metrics(daemon: DaemonView) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RelayCollector(daemon))
    return generate_latest(registry).decode()
