"""Upgrading in real Chromium: a free member sees the operator's price on their account page,
subscribes on the PayPal emulator's consent page, comes back upgraded with the renewal date,
cancels, and sees until when they stay upgraded."""
import pytest

from tests.kit.browser import SHOTS, STEP_MS, member
from tests.kit.system import start_system

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def system(database_url, tmp_path_factory):
    running = start_system(database_url, tmp_path_factory.mktemp("browser-upgrade"))
    made = running.cli("upgrade-plan", "create", "--price", "9.99")
    assert made.returncode == 0, made.stderr
    yield running
    running.stop()


def test_a_free_member_upgrades_on_paypal_then_cancels(browser, system):
    context, page, member_id = member(browser, system, "Ulla Upgrader")
    try:
        page.goto(system.url + "/account")
        expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=STEP_MS)
        expect(page.locator("#tier")).to_have_text("Free")
        button = page.locator("#upgrade-button")
        expect(button).to_have_text("Upgrade for $9.99 a month")
        expect(page.locator("#cancel-upgrade-button")).to_be_hidden()

        button.click()
        page.wait_for_url(system.settings.paypal_url + "/webapps/billing/subscriptions?ba_token=*", timeout=STEP_MS)
        expect(page.locator("#amount")).to_have_text("$9.99 USD")
        page.click("#approve")
        page.wait_for_url("**/account?upgrade=done", timeout=STEP_MS)
        expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=STEP_MS)
        expect(page.locator("#tier")).to_have_text("Upgraded")
        status = page.locator("#subscription-status")
        expect(status).to_have_attribute("data-status", "ACTIVE")
        expect(status).to_contain_text("renews on")
        expect(status).to_contain_text("$9.99 a month")
        expect(button).to_be_hidden()
        page.screenshot(path=str(SHOTS / "account-upgraded.png"))

        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#cancel-upgrade-button")
        expect(status).to_have_attribute("data-status", "CANCELLED", timeout=STEP_MS)
        expect(status).to_contain_text("you stay upgraded until")
        ends_at = status.get_attribute("data-ends-at")
        assert ends_at and ends_at[:4].isdigit()
        expect(page.locator("#tier")).to_have_text("Upgraded")
        expect(page.locator("#cancel-upgrade-button")).to_be_hidden()
        expect(page.locator("#upgrade-error")).to_be_hidden()
        page.screenshot(path=str(SHOTS / "account-upgrade-cancelled.png"))

        page.reload()  # what the server says, not what the page remembered
        expect(page.locator("#subscription-status")).to_have_attribute("data-status", "CANCELLED", timeout=STEP_MS)
        expect(page.locator("#tier")).to_have_text("Upgraded")
    finally:
        context.close()
