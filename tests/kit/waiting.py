"""Waiting for something to happen, bounded: the one way tests and their kit poll (never sleep
and hope). `eventually` in async code (a condition may be async: its result is awaited),
`wait_for` in sync code (plain pymongo, a process; Playwright's and Marionette's pages pass
their own `sleep`, which keeps the browser's events flowing). Both return the condition's value
once `until` holds for it (by default: once it is truthy), and fail with what did not happen,
how long was waited and the value last seen."""
import asyncio
import inspect
import time

POLL_S = 0.05


async def eventually(condition, what="the condition", timeout_s=10, *, until=bool, poll_s=POLL_S):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        found = condition()
        if inspect.isawaitable(found):
            found = await found
        if until(found):
            return found
        assert loop.time() < deadline, f"no {what} within {timeout_s} s (last seen: {found!r:.1000})"
        await asyncio.sleep(poll_s)


def wait_for(condition, what="the condition", timeout_s=15, *, until=bool, poll_s=POLL_S * 2, sleep=time.sleep):
    deadline = time.monotonic() + timeout_s
    while not until(found := condition()):
        assert time.monotonic() < deadline, (f"timed out after {timeout_s} s waiting for {what} "
                                             f"(last seen: {found!r:.1000})")
        sleep(poll_s)
    return found


def page_sleep(page):
    """`wait_for`'s pause on a Playwright page: the page's own wait, which (unlike time.sleep)
    lets Playwright handle the page's events meanwhile (a popup closing, console lines)."""
    return lambda seconds: page.wait_for_timeout(seconds * 1000)
