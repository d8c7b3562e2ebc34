"""Operators can see it: a gateway's GET /metrics and a node's metrics port, scraped the way
Prometheus does (text exposition, parsed with prometheus_client's parser) while a real system
takes pages, frames, refusals, a call and PayPal's webhooks; anyone else is refused."""
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.kit.calls import Call
from tests.kit.client import Member
from tests.kit.paypal import approve_on_paypal
from tests.kit.system import free_port, run, start_system
from tests.kit.waiting import wait_for


@pytest.fixture(scope="module")
def metered(database_url, tmp_path_factory):
    running = start_system(database_url, tmp_path_factory.mktemp("system"), node_metrics_port=free_port())
    yield running
    running.finish()


def scrape(url, headers=None):
    """{(name, labels as a sorted tuple): value} of every sample."""
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def test_a_gateway_counts_pages_frames_refusals_hops_calls_and_webhooks(metered):
    system, url = metered, metered.url + "/metrics"
    before = scrape(url)

    async def scenario():
        viewer = await Member(system.url).sign_up("Metered Viewer")
        page = await viewer.socket()
        await page.request("ping")
        await page.expect("pong")
        await page.request("watch", members=["0" * 24])
        refused = await page.expect("error")
        assert refused["code"] == "no_such_member"
        during = scrape(url)
        assert value(during, "interkanect_pages_open") >= 1 and value(during, "interkanect_members_online") >= 1
        call = await Call.answered(system, "Metered Host", "Metered Caller")
        await call.agree(1500, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        assert value(scrape(url), "interkanect_calls", state="awaiting_payment") >= 1
        approve_on_paypal(ready["payment"]["approve_url"])
        await call.host_page.expect("call_state", state="running", event="payment_captured")
        await call.host_page.request("hang_up", call_id=call.id)
        await call.caller_page.expect("call_state", state="ended")
        await page.close()
    run(scenario())
    def webhooks_counted():
        # PayPal delivers its approval and capture webhooks on its own time, in either order.
        samples = scrape(url)
        return samples if all(value(samples, "interkanect_webhooks_total", event_type=kind, status="200") for kind in (
            "PAYMENT.CAPTURE.COMPLETED", "CHECKOUT.ORDER.APPROVED")) else None
    after = wait_for(webhooks_counted, "PayPal's approval and capture webhooks counted")
    for name, labels in (("interkanect_frames_received_total", {"type": "ping"}),
                         ("interkanect_frames_received_total", {"type": "watch"}),
                         ("interkanect_refusals_total", {"code": "no_such_member"}),
                         ("interkanect_webhooks_total", {"event_type": "CHECKOUT.ORDER.APPROVED", "status": "200"})):
        assert value(after, name, **labels) > value(before, name, **labels), (name, labels)
    assert value(after, "interkanect_shard_roundtrip_seconds_count") > value(before,
                                                                            "interkanect_shard_roundtrip_seconds_count")
    assert value(after, "interkanect_webhook_lag_seconds_count") >= 2
    assert value(after, "interkanect_directory_roundtrip_seconds_count") >= 1
    assert value(after, "interkanect_calls", state="awaiting_payment") == 0   # a state gone reads 0
    assert value(after, "interkanect_refund_requests", state="needs_operator") == 0
    # The full collection the gateway makes at start (interkanect/collector.py) is counted.
    assert value(after, "interkanect_gc_pause_seconds_count", generation="2") >= 1


def test_metrics_are_refused_to_anyone_not_on_this_machine_or_in_metrics_networks(metered):
    with pytest.raises(urllib.error.HTTPError) as refused:
        scrape(metered.url + "/metrics", {"X-Forwarded-For": "203.0.113.9"})   # through a proxy: not this machine
    assert refused.value.code == 403


def test_a_node_shows_its_actor_processes(metered):
    samples = scrape(f"http://127.0.0.1:{metered.settings.node_metrics_port}/metrics")
    assert value(samples, "interkanect_node_actor_processes") >= 3   # the admin, shards, adapters
    assert value(samples, "interkanect_node_actor_resident_bytes") > 10_000_000
    assert value(samples, "interkanect_node_actor_open_fds") > 10
    assert value(samples, "process_resident_memory_bytes") > 0


def test_the_grafana_dashboard_charts_only_metrics_the_system_serves(metered):
    """Every metric name a panel of docs/grafana-interkanect.json queries is one a gateway or
    node exposes (a renamed metric would leave an empty chart)."""
    import json
    import re
    from pathlib import Path
    dashboard = json.loads((Path(__file__).parent.parent / "docs" / "grafana-interkanect.json").read_text())
    queried = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"\binterkanect_[a-z_]+", target["expr"])}
    served = set()
    for url in (metered.url + "/metrics", f"http://127.0.0.1:{metered.settings.node_metrics_port}/metrics"):
        with urllib.request.urlopen(url, timeout=10) as answer:
            for family in text_string_to_metric_families(answer.read().decode()):   # with samples or not yet
                suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}.get(family.type, ("",))
                served |= {family.name + suffix for suffix in suffixes}
    assert queried and queried <= served, queried - served
