"""Every page at phone width (360 px) in real Chromium, as the people who use it: visitors,
members after a real paid call (history, a call's detail, earnings), an operator on the
operators' pages, and both sides of a live call (terms, payment, the running call, the tip
dialog). On each: nothing scrolls sideways, every control a screen reader meets has a name
(Chromium's own accessibility tree says so), and Tab reaches the page's main controls."""
import pytest

from tests.kit.browser import (STEP_MS, an_operator, logged_in, member, open_live, print_consoles, status, upgrade,
                               video_flows)
from tests.test_browser_journey import pay_in_popup
from tests.test_browser_pages import CALLER_ZONE, HOST_ZONE, paid_call_with_tip

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 740}
TAB_LIMIT = 80          # presses of Tab before a control counts as unreachable
# Roles a person operates; each must have an accessible name.
CONTROL_ROLES = {"button", "link", "textbox", "searchbox", "combobox", "listbox", "checkbox", "radio", "switch",
                 "tab", "slider", "spinbutton", "menuitem", "option"}


def overflow(page):
    """How far the page is wider than the window (0 = nothing scrolls sideways), and the widest
    offenders, to say what to fix."""
    return page.evaluate("""() => {
        const width = window.innerWidth;
        const extra = document.scrollingElement.scrollWidth - width;
        if (extra <= 0) return null;
        const wide = [...document.querySelectorAll('body *')]
            .filter((node) => node.getBoundingClientRect().right > width + 0.5 && node.getClientRects().length)
            .slice(0, 5).map((node) => node.outerHTML.slice(0, 160));
        return { extra, wide };
    }""")


def unnamed_controls(page):
    """Controls in Chromium's accessibility tree (what a screen reader gets) without a name."""
    cdp = page.context.new_cdp_session(page)
    try:
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
        missing = []
        for node in nodes:
            role = node.get("role", {}).get("value")
            if node.get("ignored") or role not in CONTROL_ROLES:
                continue
            if str(node.get("name", {}).get("value", "")).strip():
                continue
            html = "?"
            if node.get("backendDOMNodeId"):
                html = cdp.send("DOM.getOuterHTML", {"backendNodeId": node["backendDOMNodeId"]})["outerHTML"]
            missing.append(f"{role}: {html[:200]}")
        return missing
    finally:
        cdp.detach()


def tab_reaches(page, selector):
    """Tab from the top of the page until `selector` has the focus."""
    page.evaluate("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    for _ in range(TAB_LIMIT):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => Boolean(document.activeElement?.matches(s))", selector):
            return True
    return False


def audit(page, name, reachable=()):
    """The three checks on the page as it is now; returns what failed, in words."""
    problems = []
    wider = overflow(page)
    if wider:
        problems.append(f"{name}: {wider['extra']} px wider than the window: {wider['wide']}")
    problems += [f"{name}: no name: {control}" for control in unnamed_controls(page)]
    problems += [f"{name}: Tab never reaches {selector}" for selector in reachable if not tab_reaches(page, selector)]
    return problems


def visit(page, url):
    page.goto(url)
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=STEP_MS)


NAV = ("#nav-directory",)
MEMBER_NAV = ("#nav-directory", "#nav-history", "#nav-account", "#logout-button")


def test_every_page_fits_a_phone_names_its_controls_and_is_reachable_from_the_keyboard(browser, system):
    host, caller, call_id = paid_call_with_tip(system, "Ada Audited", "Ben Browser")
    operator = an_operator(system, "Ora Operator")
    problems = []
    contexts = []
    try:
        # Visitors.
        visitor_context = browser.new_context(viewport=PHONE)
        contexts.append(visitor_context)
        visitor = visitor_context.new_page()
        for name, url, reachable in (
                ("directory (visitor)", "/", NAV + ("#search",)),
                ("member (visitor)", f"/m/{host.profile['id']}", NAV + ("#call-login-link",)),
                ("login", "/login", ("#email", "#password", "#login-form button[type=submit]", "#signup-link")),
                ("signup", "/signup", ("#display_name", "#email", "#password", "#signup-form button[type=submit]")),
                ("reset", "/reset", ("#email", "#request-form button[type=submit]")),
                ("reset with a token", "/reset?token=abc", ("#password", "#password_confirm",
                                                            "#choose-form button[type=submit]"))):
            visit(visitor, system.url + url)
            problems += audit(visitor, name, reachable)

        # A member after a paid call: their own pages and the host's.
        caller_context, page = logged_in(browser, system, caller, CALLER_ZONE, viewport=PHONE)
        contexts.append(caller_context)
        for name, url, reachable in (
                ("directory", "/", MEMBER_NAV + ("#search",)),
                ("member", f"/m/{host.profile['id']}", MEMBER_NAV),
                ("account", "/account", MEMBER_NAV + ("#display_name", "#payout_email", "#avatar",
                                                      "#profile-form button[type=submit]")),
                ("history", "/history", MEMBER_NAV + (f'a[href="/history/{call_id}"]',)),
                ("call detail", f"/history/{call_id}", MEMBER_NAV + ("#reason", "#refund-form button[type=submit]")),
                ("earnings", "/earnings", MEMBER_NAV),
                ("operators only", "/operator/refunds", MEMBER_NAV)):
            visit(page, system.url + url)
            problems += audit(page, name, reachable)
        # A refund request, so that the operators' queue has a request with its forms.
        visit(page, f"{system.url}/history/{call_id}")
        page.fill("#reason", "The picture froze.")
        page.click("#refund-form button[type=submit]")
        expect(page.locator("#refund-state")).to_have_attribute("data-state", "open", timeout=STEP_MS)

        host_context, host_page = logged_in(browser, system, host, HOST_ZONE, viewport=PHONE)
        contexts.append(host_context)
        visit(host_page, f"{system.url}/earnings")
        problems += audit(host_page, "earnings (host)", MEMBER_NAV + ("#nav-earnings",))

        # An operator's pages.
        operator_context, op = logged_in(browser, system, operator, "UTC", viewport=PHONE)
        contexts.append(operator_context)
        visit(op, system.url + "/operator/refunds")
        expect(op.locator(".refund-item")).to_have_count(1, timeout=STEP_MS)
        op.click(".refund-item__log-button")
        expect(op.locator(".refund-item .call-log")).to_be_visible(timeout=STEP_MS)
        problems += audit(op, "operator refunds", ("#nav-operator", "#refund-filter select",
                                                   ".refund-item__log-button", ".note-form textarea",
                                                   ".decision-form input[value=approve]",
                                                   ".decision-form button[type=submit]"))
        visit(op, system.url + "/operator/members")
        expect(op.locator("#members-table tbody tr").first).to_be_visible(timeout=STEP_MS)
        problems += audit(op, "operator members", ("#nav-operator", "#member-search input[name=q]",
                                                   "#members-table select", ".tier-form button[type=submit]"))
        assert not problems, "\n".join(problems)
    finally:
        for context in contexts:
            context.close()


def test_the_call_page_on_a_phone_in_every_step_of_a_paid_call(browser, system):
    host_context, host, host_id = member(browser, system, "Pia Phone")
    caller_context, caller, _ = member(browser, system, "Quin Caller")
    problems = []
    try:
        upgrade(system, host, host_id)
        for page in (host, caller):
            page.set_viewport_size(PHONE)
        # Ringing: the host's popup and the caller's ringing call page.
        open_live(host, system.url + "/")
        open_live(caller, f"{system.url}/m/{host_id}")
        problems += audit(caller, "member page (online host)", ("#call-button",))
        caller.click("#call-button")
        expect(host.locator("[data-incoming-call]")).to_be_visible(timeout=STEP_MS)
        caller.wait_for_url("**/call/*", timeout=STEP_MS)
        status(caller, "ringing")
        problems += audit(host, "incoming call", ("[data-incoming-call] [data-action=accept]",
                                                  "[data-incoming-call] [data-action=decline]"))
        problems += audit(caller, "call: ringing", ("#cancel-button",))
        host.locator("[data-incoming-call] [data-action=accept]").click()
        host.wait_for_url("**/call/*", timeout=STEP_MS)
        for page in (host, caller):
            status(page, "negotiating")
        for page in (host, caller):
            video_flows(page)
        room = ("#tab-chat", "#chat-input", "#chat-send")
        controls = ("#mute-button", "#camera-button", "#hangup-button")
        problems += audit(host, "call: host sets terms", ("#price", "#minutes", "#propose-button") + controls + room)

        host.fill("#price", "15")
        host.fill("#minutes", "10")
        host.click("#propose-button")
        expect(caller.locator("#pay-button")).to_be_enabled(timeout=STEP_MS)
        problems += audit(caller, "call: caller reads the terms",
                          ("#pay-button", "#renegotiate-button", "#decline-terms-button", "#tip-button") + controls)

        # The whiteboard's toolbar, drawn.
        caller.click("#tab-board")
        problems += audit(caller, "call: whiteboard", ('[data-tool="pen"]', '[data-tool="text"]', "#board-export"))
        caller.click("#tab-chat")

        # The tip dialog, open (a modal: Tab stays in it).
        caller.click("#tip-button")
        expect(caller.locator("#tip-dialog")).to_be_visible()
        problems += audit(caller, "call: tip dialog", ("#tip-amount", "#tip-send", "#tip-dismiss"))
        caller.keyboard.press("Escape")

        caller.click("#pay-button")
        expect(caller.locator("#paypal-button")).to_be_visible(timeout=STEP_MS)
        for page in (host, caller):
            status(page, "awaiting_payment")
        problems += audit(caller, "call: suspended for the payment", ("#paypal-button", "#hangup-button"))
        problems += audit(host, "call: host waits for the payment", ("#hangup-button",))

        pay_in_popup(caller, "$15.00")
        for page in (host, caller):
            status(page, "running")
        for page, who in ((host, "host"), (caller, "caller")):
            problems += audit(page, f"call: running ({who})", controls + room)
        host.click("#hangup-button")
        for page, who in ((host, "host"), (caller, "caller")):
            status(page, "ended")
            problems += audit(page, f"call: ended ({who})", ("#back-link",))
        assert not problems, "\n".join(problems)
    except Exception:
        print_consoles(host, caller)
        raise
    finally:
        host_context.close()
        caller_context.close()


def test_the_audit_notices_an_unnamed_control_a_wide_element_and_an_unreachable_one(browser, system):
    """The checks above would pass on anything if they were blind: here they must complain."""
    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        visit(page, system.url + "/login")
        assert audit(page, "login", ("#email",)) == []
        page.evaluate("""() => document.querySelector('main').insertAdjacentHTML('beforeend',
            '<button id="bare" type="button"></button><input id="nameless"><div id="wide">wide</div>'
            + '<button id="unreachable" tabindex="-1">Hidden from Tab</button>')""")
        page.evaluate("document.getElementById('wide').style.width = '600px'")   # the CSP blocks style attributes
        problems = audit(page, "login", ("#unreachable",))
        assert any("no name: button" in problem and 'id="bare"' in problem for problem in problems), problems
        assert any("no name: textbox" in problem and 'id="nameless"' in problem for problem in problems), problems
        assert any("wider than the window" in problem for problem in problems), problems
        assert "login: Tab never reaches #unreachable" in problems
    finally:
        context.close()
