"""A node's Prometheus metrics (GET /metrics on `node_metrics_port` of `actor_host`): the node
process itself (prometheus_client's process collector) and its actor processes together (the
Thespian admin, the member shards, the adapters, any call session processes): how many, CPU
seconds, resident memory and open file descriptors, read from /proc at each scrape."""
import logging
import os

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from interkanect import processes

log = logging.getLogger(__name__)


class ActorProcesses:
    """A collector: the node's actor processes (below the node process, or in the session its
    Thespian admin starts)."""

    def __init__(self, node_pid):
        self.node_pid = node_pid

    def collect(self):
        # Thespian's admin runs in a session of its own, and its actors in it, not all below it.
        sessions = {processes.session_of(pid) for pid in processes.descendants(self.node_pid)} - {None}
        sessions.discard(processes.session_of(self.node_pid))
        pids = set(processes.session_pids(sessions)) | set(processes.descendants(self.node_pid))
        usages = [u for u in map(processes.usage, pids) if u is not None]
        count = GaugeMetricFamily("interkanect_node_actor_processes", "Actor processes of this node.")
        count.add_metric([], len(usages))
        cpu = CounterMetricFamily("interkanect_node_actor_cpu_seconds", "CPU seconds of this node's live actor "
                                  "processes (a process that exits takes its seconds with it).")
        cpu.add_metric([], sum(u[0] for u in usages))
        memory = GaugeMetricFamily("interkanect_node_actor_resident_bytes", "Resident memory of this node's actor "
                                   "processes together.")
        memory.add_metric([], sum(u[1] for u in usages))
        fds = GaugeMetricFamily("interkanect_node_actor_open_fds", "Open file descriptors of this node's actor "
                                "processes together.")
        fds.add_metric([], sum(u[2] for u in usages))
        return [count, cpu, memory, fds]


def serve(settings):
    """Start the metrics endpoint when `node_metrics_port` is set (a thread of this process)."""
    if not settings.node_metrics_port:
        return None
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    registry.register(ActorProcesses(os.getpid()))
    server, _ = start_http_server(settings.node_metrics_port, addr=settings.actor_host, registry=registry)
    log.info("node metrics on http://%s:%d/metrics", settings.actor_host, settings.node_metrics_port)
    return server
