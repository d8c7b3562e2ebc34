"""The in-call room in real Chromium: two members in a call (real gateway, actor node, coturn
for the relay check) chat and draw over the call's own RTCDataChannels, see the same
encryption check words, read the call's log, and the readiness check says what works.

Nothing of the chat or the board passes the server: the pages only have the data channels of
their peer connection for it (the gateway relays SDP and candidates, nothing else).
Screenshots go to var/screenshots/call-room*.png (one also to docs/screenshots/)."""
import re

import pytest

from tests.kit.browser import (PHONE, STEP_MS, call_and_accept, member, print_consoles, shot, status, tab_until,
                               video_flows)
from tests.kit.system import start_system
from tests.test_turn import coturn  # noqa: F401 (a fixture: a real coturn on loopback)

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect

pytestmark = pytest.mark.browser

CHANNEL_MS = 20_000      # a peer connection (and its data channels) coming up, after a refresh too
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def system(database_url, tmp_path_factory, coturn):  # noqa: F811 (coturn is the fixture)
    urls = (f"turn:{coturn.host}:{coturn.port}?transport=udp",)
    running = start_system(database_url, tmp_path_factory.mktemp("browser-callroom"), turn_urls=urls,
                           turn_secret=coturn.secret)
    yield running
    running.stop()


def channels_open(page):
    for panel in ("#chat-panel", "#board-panel"):
        expect(page.locator(panel)).to_have_attribute("data-channel", "open", timeout=CHANNEL_MS)


def board_box(page):
    """The canvas scrolled to the top of the window (the mouse only reaches what is on screen)."""
    page.evaluate("document.getElementById('board-canvas').scrollIntoView({block: 'start'})")
    return page.locator("#board-canvas").bounding_box()


def draw(page, path):
    """Press, move through `path` (shares of the canvas) and release, with the mouse."""
    box = board_box(page)
    points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in path]
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*point, steps=4)
    page.mouse.up()


def inked_pixels(page):
    """How many pixels of the board's canvas are drawn on."""
    return page.evaluate("""() => {
        const canvas = document.getElementById('board-canvas');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let inked = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) inked += 1;
        return inked;
    }""")


def ops(page, count):
    expect(page.locator("#board-canvas")).to_have_attribute("data-ops", str(count), timeout=STEP_MS)


def fits_the_width(page):
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_chat_whiteboard_check_words_log_and_readiness_between_two_browsers(browser, system):
    host_context, host, host_id = member(browser, system, "Rita Room")
    caller_context, caller, _ = member(browser, system, "Colin Chat")
    try:
        call_and_accept(system, host, caller, host_id)
        for page in (host, caller):
            status(page, "negotiating")
            expect(page.locator("#room")).to_be_visible()
        for page in (host, caller):
            video_flows(page)
            channels_open(page)

        # Readiness: the fake camera and microphone work, the socket is up, and coturn hands out
        # a relay with the call's own short-lived credentials.
        readiness = caller.locator("#readiness")
        expect(readiness).to_be_visible()
        expect(readiness).to_have_attribute("data-state", "done", timeout=STEP_MS)
        for check in ("camera", "microphone", "network", "turn"):
            expect(readiness.locator(f'[data-check="{check}"]')).to_have_attribute("data-result", "ok")
        expect(caller.locator("#readiness-advice")).to_have_text("All set.")
        expect(caller.locator("#readiness-consent-field")).to_be_hidden()

        # Check words: four PGP words, the same on both sides, and each side's view of the
        # fingerprints mirrors the other's.
        words = host.locator("#checkwords-words")
        expect(words).to_have_attribute("data-words", re.compile(r"^[a-z]+( [a-z]+){3}$"), timeout=STEP_MS)
        expect(caller.locator("#checkwords-words")).to_have_attribute("data-words", words.get_attribute("data-words"))
        for page in (host, caller):
            expect(page.locator("#checkwords")).to_have_attribute("data-state", "match", timeout=STEP_MS)
            expect(page.locator("#checkwords-warning")).to_be_hidden()

        # Chat both ways, from the keyboard (Enter sends), with names; text stays text.
        expect(caller.locator("#tab-chat")).to_have_attribute("aria-selected", "true")
        caller.fill("#chat-input", "Hello Rita, can you see the diagram?")
        caller.press("#chat-input", "Enter")
        at_host = host.locator('#chat-log [data-from="them"]')
        expect(at_host.locator(".chat__text")).to_have_text(["Hello Rita, can you see the diagram?"], timeout=STEP_MS)
        expect(at_host.locator(".chat__name")).to_have_text(["Colin Chat"])
        expect(at_host.locator("time")).to_have_text([re.compile(r"\d")])
        expect(caller.locator('#chat-log [data-from="me"]')).to_have_attribute("data-status", "delivered",
                                                                                timeout=STEP_MS)
        expect(caller.locator('#chat-log [data-from="me"] .chat__name')).to_have_text("You")
        host.fill("#chat-input", "<b>Yes</b> — drawing it now")
        host.press("#chat-input", "Enter")
        at_caller = caller.locator('#chat-log [data-from="them"]')
        expect(at_caller.locator(".chat__text")).to_have_text(["<b>Yes</b> — drawing it now"], timeout=STEP_MS)
        expect(caller.locator("#chat-log b")).to_have_count(0)
        assert caller.get_attribute("#chat-input", "maxlength") == "1000"

        # The whiteboard: the host draws a stroke with the mouse; the caller's board gets it.
        # The caller is on the chat tab meanwhile: the board tab is one arrow key away.
        host.click("#tab-board")
        expect(host.locator("#board-panel")).to_be_visible()
        caller.focus("#tab-chat")
        caller.keyboard.press("ArrowRight")
        expect(caller.locator("#tab-board")).to_be_focused()
        expect(caller.locator("#board-panel")).to_be_visible()
        draw(host, [(0.1, 0.2), (0.3, 0.5), (0.5, 0.3), (0.7, 0.6)])
        for page in (host, caller):
            ops(page, 1)
        assert inked_pixels(caller) > 200
        shot(host, "room-board")

        # Undo is the author's: it takes the stroke off both boards; redo brings it back.
        expect(caller.locator("#board-undo")).to_be_disabled()   # nothing of the caller's to undo
        host.click("#board-undo")
        for page in (host, caller):
            ops(page, 0)
        assert inked_pixels(caller) == 0
        host.keyboard.press("Control+y")
        for page in (host, caller):
            ops(page, 1)

        # The caller adds a rectangle and a label; colours and widths are the caller's choice.
        caller.click('[data-tool="rect"]')
        caller.click('[data-color="#d92d20"]')
        caller.click('[aria-label="Thick"]')
        draw(caller, [(0.55, 0.1), (0.9, 0.4)])
        caller.click('[data-tool="text"]')
        expect(caller.locator("#board-text")).to_be_focused()
        caller.keyboard.type("Step 2")
        box = board_box(caller)
        caller.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
        for page in (host, caller):
            ops(page, 3)

        # The help explains every button.
        caller.click("#board-help-button")
        help_text = caller.locator("#board-help")
        expect(help_text).to_be_visible()
        for name in ("Pen", "Eraser", "Line, Rectangle, Ellipse", "Text", "Undo, Redo", "Clear", "Save as PNG"):
            expect(help_text.locator("dt", has_text=name).first).to_be_visible()
        expect(caller.locator("#board-help-button")).to_have_attribute("aria-expanded", "true")
        expect(help_text.locator("dt", has_text="Keyboard")).to_be_visible()
        caller.click("#board-help-button")

        # The board by keyboard alone: the Line tool chosen with Tab and Enter, the board reached
        # with Tab, a line drawn with the arrows and Enter; each step said; the host's board gets it.
        tab_until(caller, 'button[data-tool="line"]')
        caller.keyboard.press("Enter")
        expect(caller.locator('button[data-tool="line"]')).to_have_attribute("aria-pressed", "true")
        tab_until(caller, "#board-canvas")
        note = caller.locator("#board-note")
        expect(note).to_contain_text("Keyboard drawing: arrows move the cursor")
        for _ in range(2):
            caller.keyboard.press("Shift+ArrowDown")       # to 70% down
        caller.keyboard.press("Enter")
        expect(note).to_have_text(re.compile(r"^Line started at 50% across, 70% down\."))
        for _ in range(3):
            caller.keyboard.press("Shift+ArrowRight")      # to 80% across
        caller.keyboard.press("Enter")
        expect(note).to_have_text("Line drawn. Cursor 80% across, 70% down.")
        for page in (host, caller):
            ops(page, 4)
        line = host.evaluate("""() => { const v = JSON.parse(sessionStorage.getItem(
            Object.keys(sessionStorage).find((k) => k.startsWith('interkanect.board.'))) || '{}');
            return (v.ops || []).filter((op) => op.kind === 'line').map((op) => [op.from, op.to]); }""")
        assert line == [[[0.5, 0.7], [0.8, 0.7]]], line
        # Escape drops a shape begun by mistake: nothing is sent.
        caller.keyboard.press("Enter")
        caller.keyboard.press("ArrowLeft")
        caller.keyboard.press("Escape")
        expect(note).to_have_text("The line was dropped.")
        ops(caller, 4)

        # A refresh with nothing kept in the tab: the new connection's channels bring the board
        # back from the host, and the chat works again on the new channel.
        # A message the host writes meanwhile waits (or goes unacknowledged) and is sent again
        # on the new channel: it arrives once.
        host.click("#tab-chat")
        caller.evaluate("sessionStorage.clear()")
        caller.reload()
        host.fill("#chat-input", "Sent while you were away")
        host.press("#chat-input", "Enter")
        status(caller, "negotiating")
        channels_open(caller)
        ops(caller, 4)
        expect(caller.locator('#chat-log [data-from="them"] .chat__text')).to_have_text(["Sent while you were away"],
                                                                                      timeout=STEP_MS)
        expect(host.locator('#chat-log [data-from="me"]').last).to_have_attribute("data-status", "delivered",
                                                                                 timeout=STEP_MS)
        host.click("#tab-board")
        caller.click("#tab-chat")
        caller.fill("#chat-input", "Back after a refresh")
        caller.press("#chat-input", "Enter")
        expect(at_host.locator(".chat__text")).to_have_text(
            ["Hello Rita, can you see the diagram?", "Back after a refresh"], timeout=STEP_MS)
        # The host looks at the board meanwhile: the Chat tab counts the new message until shown.
        expect(host.locator("#chat-unread")).to_have_text("1 new")
        host.click("#tab-chat")
        expect(host.locator("#chat-unread")).to_be_hidden()
        host.click("#tab-board")

        # Export: a PNG downloaded on the host's machine.
        with host.expect_download(timeout=STEP_MS) as downloading:
            host.click("#board-export")
        download = downloading.value
        assert download.suggested_filename.endswith(".png")
        with open(download.path(), "rb") as png:
            assert png.read(8) == PNG_SIGNATURE

        # Clear empties both boards (and its author can undo it).
        host.click("#board-clear")
        for page in (host, caller):
            ops(page, 0)
        host.click("#board-undo")
        for page in (host, caller):
            ops(page, 4)

        # Terms: the log on both sides shows the joins and the terms with their fingerprint.
        host.fill("#minutes", "10")
        host.click("#propose-button")
        fingerprint = host.locator("#proposal-sent-fingerprint")
        expect(fingerprint).to_have_text(re.compile(r"^[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}$"), timeout=STEP_MS)
        terms = fingerprint.text_content()
        for page in (host, caller):
            page.click("#tab-log")
            log = page.locator("#calllog-list")
            expect(log.locator('[data-event="ringing"]')).to_contain_text("Colin Chat called Rita Room.")
            expect(log.locator('[data-event="joined"]').first).to_be_visible(timeout=STEP_MS)
            expect(log.locator('[data-event="proposed"]')).to_contain_text(terms, timeout=STEP_MS)
            expect(page.locator("#calllog-summary")).to_contain_text("Connected: you")
        expect(caller.locator("#pay-button")).to_be_enabled()
        caller.click("#pay-button")   # a free host: the call starts at once
        for page in (host, caller):
            status(page, "running")
            expect(page.locator('#calllog-list [data-event="agreed"]')).to_contain_text(terms, timeout=STEP_MS)
            expect(page.locator("#readiness")).to_be_hidden()
        caller.click("#tab-board")
        caller.evaluate("scrollTo(0, 0)")   # the sticky header stays on top of a full-page picture
        shot(caller, "room", docs=True, full_page=True)
        caller.set_viewport_size(PHONE)
        assert fits_the_width(caller)
        shot(caller, "room-phone", full_page=True)

        host.click("#hangup-button")
        for page in (host, caller):
            status(page, "ended")
            expect(page.locator("#chat-input")).to_be_disabled()
            expect(page.locator('#calllog-list [data-event="ended"]')).to_have_count(1, timeout=STEP_MS)
    except Exception:
        print_consoles(host, caller)
        raise
    finally:
        host_context.close()
        caller_context.close()


def test_a_fingerprint_the_other_side_does_not_see_raises_a_loud_warning(browser, system):
    page = browser.new_page()
    try:
        page.goto(system.url + "/login")
        page.evaluate("""() => document.body.insertAdjacentHTML('beforeend',
            '<section id="checkwords"><p id="checkwords-words"></p><p id="checkwords-warning" hidden></p></section>')""")
        result = page.evaluate("""async () => {
            const { CheckWords, fingerprints, checkWords } = await import('/static/js/checkwords.js');
            const sdp = (hex) => `v=0\\r\\na=fingerprint:sha-256 ${hex}\\r\\n`;
            const a = 'AA:' + '01:'.repeat(30) + 'FF', b = 'BB:' + '02:'.repeat(30) + 'EE';
            const here = await checkWords(fingerprints(sdp(a)), fingerprints(sdp(b)));
            const there = await checkWords(fingerprints(sdp(b)), fingerprints(sdp(a)));
            const check = new CheckWords();
            check.mine = { local: fingerprints(sdp(a)), remote: fingerprints(sdp(b)) };
            check.theirs = { local: fingerprints(sdp('CC:' + '03:'.repeat(30) + 'DD')), remote: check.mine.local };
            check.compare();
            const warning = document.getElementById('checkwords-warning');
            return { here, there, state: check.section.dataset.state, hidden: warning.hidden, text: warning.textContent };
        }""")
    finally:
        page.close()
    assert result["here"] == result["there"] and len(result["here"]) == 4
    assert result["state"] == "mismatch" and not result["hidden"]
    assert "Someone may be listening in" in result["text"]


def test_the_readiness_check_warns_when_the_relay_is_missing_or_unreachable(browser, system):
    page = browser.new_page()
    try:
        page.goto(system.url + "/login")
        result = page.evaluate("""async () => {
            const { hasTurn, probeTurn } = await import('/static/js/readiness.js');
            return {
                none: hasTurn([]), stunOnly: hasTurn([{ urls: ['stun:stun.example:3478'] }]),
                turn: hasTurn([{ urls: ['turn:127.0.0.1:3478'] }]),
                unreachable: await probeTurn([{ urls: ['turn:127.0.0.1:9?transport=udp'], username: 'u', credential: 'c' }],
                                             3000),
            };
        }""")
    finally:
        page.close()
    assert result == {"none": False, "stunOnly": False, "turn": True, "unreachable": "fail"}


def test_two_boards_that_got_the_same_operations_in_any_order_agree(browser, system):
    page = browser.new_page()
    try:
        page.goto(system.url + "/login")
        result = page.evaluate("""async () => {
            const { Board } = await import('/static/js/board.js');
            const host = new Board('host'), caller = new Board('caller');
            const line = (from, to) => ({ color: '#1b1f33', width: 0.005, from, to });
            const h1 = host.make('line', line([0, 0], [1, 1]));
            const c1 = caller.make('rect', line([0.1, 0.1], [0.5, 0.5]));   // drawn at the same time
            caller.apply(h1); host.apply(c1);
            const sameOrder = JSON.stringify(host.ops.map((o) => o.id)) === JSON.stringify(caller.ops.map((o) => o.id));
            const undo = host.undo();                    // the host's own line, not the caller's rectangle
            caller.applyFlag(undo);
            const afterUndo = [host.visible().length, caller.visible().map((o) => o.kind).join()];
            const clear = caller.make('clear');
            host.apply(clear);
            const cleared = host.visible().length;
            const hostUndoAfterClear = host.undo();      // nothing of the host's is on the board
            const redo = host.redo();                    // the line comes back, under the clear
            const stranger = caller.apply({ id: 'x', author: 'z', clock: 9, kind: 'text', color: 'red', size: 0.1,
                                            at: [0, 0], text: 'bad colour' });
            const fresh = new Board('caller');
            fresh.merge(host.snapshot()); fresh.merge(host.snapshot());
            return { sameOrder, afterUndo, cleared, hostUndoAfterClear, redo: Boolean(redo), stranger,
                     fresh: fresh.ops.length, freshVisible: fresh.visible().length, canUndo: caller.canUndo() };
        }""")
    finally:
        page.close()
    assert result == {"sameOrder": True, "afterUndo": [1, "rect"], "cleared": 0, "hostUndoAfterClear": None,
                      "redo": True, "stranger": False, "fresh": 3, "freshVisible": 0, "canUndo": True}
