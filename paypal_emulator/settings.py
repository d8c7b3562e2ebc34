"""What one emulator instance is configured with; the CLI and tests build it."""
import dataclasses

# PayPal's client-credentials access tokens live 9 hours (expires_in: 32400).
PAYPAL_TOKEN_TTL_S = 9 * 3600


@dataclasses.dataclass(frozen=True)
class EmulatorSettings:
    host: str = "127.0.0.1"
    port: int = 8890
    # The base of every link the emulator hands out (approval page, HATEOAS links, cert URL);
    # defaults to http://host:port.
    public_url: str = ""
    client_id: str = "emulator-client-id"
    client_secret: str = "emulator-client-secret"
    # Where signed webhook events are posted, and the id they are signed for (PayPal's
    # webhook ids are alphanumeric: the verify API refuses anything else).
    webhook_url: str = ""
    webhook_id: str = "EMULATORWEBHOOKID"
    token_ttl_s: float = PAYPAL_TOKEN_TTL_S
    # Multiplies PayPal's webhook retry backoff (about 3 days for 25 retries): 1 is PayPal's
    # timing, 0.0001 replays the whole schedule in under 30 s for tests.
    time_scale: float = 1.0
    webhook_max_retries: int = 25
    webhook_timeout_s: float = 10
    # A payout batch stays PENDING this long before its items reach their final status.
    payout_processing_s: float = 2.0
    # PayPal charges the sender a fee per payout item (shown as payout_item_fee); what it is
    # depends on the account's pricing, so it is configurable and free by default.
    payout_item_fee_cents: int = 0
    # PayPal's dispute fee (US standard: $15.00), here charged to the merchant when the buyer
    # wins a dispute; it shows in the dispute's `money_movements` as a DISPUTE_FEE debit.
    dispute_fee_cents: int = 1500
    # Receivers (payout emails) containing these words end in these statuses; everything else
    # ends SUCCESS. Ordered: the first match wins.
    payout_rules: tuple = (("unclaimed", "UNCLAIMED"), ("returned", "RETURNED"), ("failed", "FAILED"),
                           ("blocked", "BLOCKED"), ("onhold", "ONHOLD"))
    merchant_email: str = "merchant@interkanect.example"
    merchant_id: str = "EMULATORMERCH"

    @property
    def base_url(self):
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
