"""Prometheus metrics, gathered from the components' statistics at scrape time.

prometheus-client renders the exposition format; nothing is counted twice on the hot path:
the numbers are the ones the spool, scheduler and event log keep anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from relay.spool.statistics import combine

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from relay.daemon import Daemon


class RelayCollector(Collector):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        daemon = self.daemon
        events = CounterMetricFamily(
            "relay_events", "Events in the event log since start", labels=["event"]
        )
        for kind, count in sorted(daemon.events.counts.items()):
            events.add_metric([kind], count)
        yield events
        if daemon.spool is not None:
            # The daemon's own spool now, the workers' shards as last asked (just before).
            parts = {**daemon.last_spool_statistics, "local": daemon.spool.statistics()}
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
        if daemon.scheduler is not None:
            stats = daemon.scheduler.statistics()
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
        now = daemon.clock.now()
        suspended = GaugeMetricFamily(
            "relay_suspended_binding_domains",
            "Binding x domain pairs suspended now",
            labels=["binding"],
        )
        counts: dict[str, int] = {}
        for s in daemon.suspensions.all():
            if s.until > now:
                counts[s.binding] = counts.get(s.binding, 0) + 1
        for binding, count in sorted(counts.items()):
            suspended.add_metric([binding], count)
        yield suspended


def render_metrics(daemon: Daemon) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RelayCollector(daemon))
    return generate_latest(registry).decode()
