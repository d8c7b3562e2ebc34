"""Which PayPal a deployment takes money through, and whether that money is real: what
`/healthz` and every page's footer say, and what the production setting insists on."""
import urllib.parse

EMULATOR, SANDBOX, LIVE = "emulator", "sandbox", "live"
LIVE_HOSTS = frozenset({"api-m.paypal.com", "api.paypal.com"})
SANDBOX_HOSTS = frozenset({"api-m.sandbox.paypal.com", "api.sandbox.paypal.com"})
LIVE_URL = "https://api-m.paypal.com"


def paypal_mode(settings):
    """"live" only for PayPal's live API over https, "sandbox" for its sandbox; anything else
    (no credentials: the local emulator, or another server) is "emulator": no real money moves."""
    if settings.paypal_emulated:
        return EMULATOR
    parts = urllib.parse.urlsplit(settings.paypal_url)
    if parts.scheme == "https" and parts.netloc.lower() in LIVE_HOSTS:
        return LIVE
    if parts.scheme == "https" and parts.netloc.lower() in SANDBOX_HOSTS:
        return SANDBOX
    return EMULATOR


def production_refusal(settings):
    """Why a production deployment may not start with these PayPal settings, or None."""
    if not settings.production:
        return None
    missing = [name for name, value in (("IK_PAYPAL_CLIENT_ID", settings.paypal_client_id),
                                        ("IK_PAYPAL_CLIENT_SECRET", settings.paypal_client_secret),
                                        ("IK_PAYPAL_WEBHOOK_ID", settings.paypal_webhook_id)) if not value]
    if missing:
        return (f"production (IK_PRODUCTION) takes real money and needs live PayPal credentials: "
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set; without them interKanect "
                f"would take fake payments (the local PayPal emulator)")
    if paypal_mode(settings) != LIVE:
        return (f"production (IK_PRODUCTION) takes real money: IK_PAYPAL_BASE_URL must be PayPal's live API "
                f"({LIVE_URL}), not {settings.paypal_url} ({paypal_mode(settings)}: no real money moves)")
    return None
