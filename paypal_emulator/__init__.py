"""A local PayPal: the REST paths, payloads, errors, idempotency and signed webhooks of
PayPal's documented API, for tests and the embedded default (PayPal itself is not reachable
from development machines). See README.md in this package for what it covers and how."""
from paypal_emulator.app import Emulator
from paypal_emulator.settings import EmulatorSettings

__all__ = ["Emulator", "EmulatorSettings"]
