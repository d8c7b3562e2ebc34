"""Waiting for something to happen, bounded: the one way tests poll (never sleep and hope).
`eventually` in async tests (a condition may be async: its result is awaited), `wait_for` in
sync ones (Playwright's sync API, plain pymongo). Both return the condition's truthy value and
fail with what did not happen and how long was waited."""
import asyncio
import inspect
import time

POLL_S = 0.05


async def eventually(condition, what="the condition", timeout_s=10):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        found = condition()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found
        assert loop.time() < deadline, f"no {what} within {timeout_s} s"
        await asyncio.sleep(POLL_S)


def wait_for(condition, what="the condition", timeout_s=15):
    deadline = time.monotonic() + timeout_s
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(POLL_S * 2)
    return found
