"""What a state change announces: the rules return these, the webhook side wraps, signs and
posts them (resource_type and resource_version as PayPal's events carry them)."""
import dataclasses
import datetime


@dataclasses.dataclass(frozen=True)
class Event:
    event_type: str
    resource_type: str
    summary: str
    resource: dict
    resource_version: str = "2.0"


def timestamp(now):
    """PayPal's Internet date-time: 2026-03-06T19:00:00Z (UTC, whole seconds)."""
    return now.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def dollars(value):
    """An amount as PayPal's event summaries write it ("Payment completed for $ 10.00 USD")."""
    return f"$ {value} USD"
