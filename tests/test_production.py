"""Production refuses fake money: with the production setting, `serve`, `gateway` and `node` start
only with live PayPal credentials, saying what is missing and starting nothing; without it, fake
payments are said on every page (the footer) and in /healthz."""
import os
import subprocess
import sys

import pytest

from interkanect import processes
from tests.kit.system import free_port

try:  # the browser test alone is skipped without Playwright, not the whole module
    from tests.test_browser_a11y import PHONE, expect, overflow
except pytest.skip.Exception:
    PHONE = None

LIVE = {"IK_PAYPAL_BASE_URL": "https://api-m.paypal.com", "IK_PAYPAL_CLIENT_ID": "live-client-id",
        "IK_PAYPAL_CLIENT_SECRET": "live-client-secret", "IK_PAYPAL_WEBHOOK_ID": "LIVEWEBHOOKID"}
# What a production deployment must not start with, and what it says instead.
NOT_LIVE = {
    "no credentials": ({}, "IK_PAYPAL_CLIENT_ID, IK_PAYPAL_CLIENT_SECRET, IK_PAYPAL_WEBHOOK_ID are not set"),
    "no webhook id": ({**LIVE, "IK_PAYPAL_WEBHOOK_ID": ""}, "IK_PAYPAL_WEBHOOK_ID is not set"),
    "the sandbox": ({**LIVE, "IK_PAYPAL_BASE_URL": ""}, "must be PayPal's live API (https://api-m.paypal.com), "
                                                        "not https://api-m.sandbox.paypal.com (sandbox"),
    "the emulator's address": ({**LIVE, "IK_PAYPAL_BASE_URL": "http://127.0.0.1:8889"},
                               "not http://127.0.0.1:8889 (emulator"),
}
COMMANDS = {"serve": ["serve"], "serve --paypal emulator": ["serve", "--paypal", "emulator"],
            "gateway": ["gateway"], "node": ["node"]}
START_TIMEOUT_S = 60


def command_env(tmp_path, **env):
    """A process environment with unused ports, no IK_* or PayPal settings of the caller's."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IK_") and k != "MONGODB_URL"}
    ports = {name: free_port() for name in ("IK_PORT", "IK_ADMIN_PORT", "IK_DB_PORT", "IK_PAYPAL_EMULATOR_PORT")}
    return dict(clean, IK_DATA_DIR=str(tmp_path / "var"), IK_CONFIG=os.devnull, **{k: str(v) for k, v in ports.items()},
                **env)


def run_command(args, env):
    try:
        return subprocess.run([sys.executable, "-m", "interkanect.cli", *args], env=env, capture_output=True,
                              text=True, timeout=START_TIMEOUT_S)
    finally:
        # Had it started an actor system after all, end it: nothing may outlive the test.
        processes.kill_sessions(processes.actor_system_sessions(int(env["IK_ADMIN_PORT"])))


def listening(env):
    return [name for name in ("IK_PORT", "IK_ADMIN_PORT", "IK_DB_PORT", "IK_PAYPAL_EMULATOR_PORT")
            if processes.port_listening("127.0.0.1", int(env[name]))]


@pytest.mark.parametrize("paypal", NOT_LIVE)
@pytest.mark.parametrize("command", COMMANDS)
def test_production_refuses_to_start_without_live_paypal_credentials(tmp_path, command, paypal):
    settings, message = NOT_LIVE[paypal]
    env = command_env(tmp_path, IK_PRODUCTION="true", **settings)
    result = run_command(COMMANDS[command], env)
    assert result.returncode != 0
    assert "production (IK_PRODUCTION) takes real money" in result.stderr, result.stderr
    assert message in result.stderr, result.stderr
    assert listening(env) == [] and not (tmp_path / "var" / "db").exists()   # nothing started


def test_production_with_live_credentials_passes_the_check(tmp_path):
    """No PayPal is called here: the gateway gets past the check and stops at the missing node."""
    env = command_env(tmp_path, IK_PRODUCTION="true", **LIVE)
    result = run_command(["gateway"], env)
    assert result.returncode != 0
    assert "production" not in result.stderr and "no actor node answers" in result.stderr, result.stderr


# What every page says with fake money -----------------------------------------------------------

PAGES = ["/", "/login", "/signup", "/reset", "/m/" + "a" * 24]


@pytest.mark.browser
@pytest.mark.skipif(PHONE is None, reason="Playwright is not installed")
def test_every_page_footer_says_the_payments_are_fake_with_the_emulator(system, browser):
    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        for path in PAGES:
            page.goto(system.url + path)
            note = page.locator("footer #test-payments")
            expect(note).to_have_text("Test payments: PayPal here is the local PayPal emulator. No real money moves.")
            expect(note).to_have_attribute("data-paypal", "emulator")
            assert overflow(page) is None, path     # the footer fits a phone too
    finally:
        context.close()
