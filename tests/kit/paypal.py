"""PayPal (the emulator) as tests and benchmarks reach it. The payer on PayPal's pages (order
approval, subscription consent), as a browser does it: open the page, fill its one form, press
a button; then follow PayPal back to us, or stop at PayPal's redirect (a payer who closes the
window first). PayPal's REST API as any client calls it, and the emulator's own control API
(`/emulator/...`: faults to play, what it was asked)."""
import base64
import html.parser
import json
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT_S = 10


class FormParser(html.parser.HTMLParser):
    """The page's form: where it posts (`action`) and its named inputs' values (`fields`)."""

    def __init__(self):
        super().__init__()
        self.action, self.fields = None, {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.action = attrs["action"]
        if tag == "input" and attrs.get("name"):
            self.fields[attrs["name"]] = attrs.get("value", "")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def press(approve_url, action, **fields):
    """Press `action` ("approve", "cancel") on PayPal's page at `approve_url`, with `fields` filled
    in (payer_email=...), without following PayPal's answer: (status, its Location or its page)."""
    with urllib.request.urlopen(approve_url, timeout=TIMEOUT_S) as page:
        form = FormParser()
        form.feed(page.read().decode())
    target = urllib.parse.urljoin(approve_url, form.action)
    data = urllib.parse.urlencode(dict(form.fields, **fields, action=action)).encode()
    try:
        with urllib.request.build_opener(NoRedirect).open(target, data=data, timeout=TIMEOUT_S) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as answer:
        return answer.code, answer.headers.get("Location") or answer.read().decode()


def approve_on_paypal(approve_url, payer_email="payer@example.com"):
    """What the payer's browser does: open PayPal's page, press Approve, follow PayPal back to
    our return page and on to the call page. Returns the final URL."""
    status, location = press(approve_url, "approve", payer_email=payer_email)
    assert status in (302, 303), (status, location)
    with urllib.request.urlopen(urllib.parse.urljoin(approve_url, location), timeout=TIMEOUT_S) as landed:
        return landed.url


def approve_and_never_come_back(approve_url):
    """The payer approves on PayPal, then closes the window before PayPal's redirect to us."""
    status, location = press(approve_url, "approve", payer_email="payer@example.com")
    assert status in (302, 303), (status, location)


def paypal_api(base_url, method, path, body=None):
    """PayPal's REST API as any client calls it: (status, JSON)."""
    basic = base64.b64encode(b"emulator-client-id:emulator-client-secret").decode()
    token_request = urllib.request.Request(base_url + "/v1/oauth2/token", data=b"grant_type=client_credentials",
                                           headers={"Authorization": f"Basic {basic}"})
    with urllib.request.urlopen(token_request, timeout=5) as answer:
        token = json.load(answer)["access_token"]
    request = urllib.request.Request(base_url + path, method=method, data=None if body is None else
                                     json.dumps(body).encode(), headers={"Authorization": f"Bearer {token}",
                                                                         "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def arm(system, fault):
    """A fault the emulator plays on the next requests it matches (README, PayPal emulator)."""
    request = urllib.request.Request(system.settings.paypal_url + "/emulator/faults", data=json.dumps(fault).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 201
        return json.load(answer)


def control(system, path, body=None, method=None, timeout_s=TIMEOUT_S):
    """The emulator's control API (`path` from /emulator): GET it, or POST `body` to it (or
    `method`); its JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(system.settings.paypal_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as answer:
        return json.load(answer)
