"""Every page is served with its security headers and the XSRF cookie its scripts echo."""
import pytest

from tests.kit.client import Member
from tests.kit.system import run

PAGES = ["/", "/login", "/signup", "/reset", "/account", "/m/" + "a" * 24]


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_served_framed_by_nobody_and_scripted_only_by_us(system, path):
    async def scenario():
        visitor = Member(system.url)
        answer = await visitor.request("GET", path, xsrf=False)
        assert answer.code == 200 and answer.headers["Content-Type"].startswith("text/html")
        policy = answer.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert "_xsrf" in visitor.cookies
    run(scenario())
