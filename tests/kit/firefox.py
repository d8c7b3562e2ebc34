"""Debian's firefox-esr for browser tests, driven over Marionette (Mozilla's own remote protocol,
built into every Firefox; Playwright needs its own patched Firefox, which cannot be downloaded here).

One `Firefox` is one headless browser process with a fresh profile of its own: fake camera and
microphone granted without a prompt, nothing dialling out, console output in a log file. It is
a context manager: leaving it ends the Marionette session and kills the browser's process group.
"""
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from marionette_driver.by import By
from marionette_driver.errors import MarionetteException
from marionette_driver.marionette import Marionette

from tests.kit.waiting import wait_for

FIREFOX = "/usr/bin/firefox-esr"
START_TIMEOUT_S = 60        # a first start of a fresh profile, on a busy two-core machine
QUIT_TIMEOUT_S = 10
POLL_S = 0.1

# What a test's profile changes from Firefox's defaults, and why.
PREFS = {
    # getUserMedia gives a synthetic camera and microphone, without asking (Chromium's
    # --use-fake-device-for-media-stream --use-fake-ui-for-media-stream).
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    # Page console lines go to the browser's stdout, i.e. the log a failing test prints.
    "devtools.console.stdout.content": True,
    # Nothing dials out: no updates, telemetry, safe browsing, captive portal checks, first-run pages.
    "app.update.disabledForTesting": True,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "browser.aboutwelcome.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "services.settings.server": "http://127.0.0.1:9/",
    "app.normandy.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "remote.prefs.recommended": True,
}


def installed():
    return os.path.exists(FIREFOX)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pref_line(name, value):
    text = "true" if value is True else "false" if value is False else repr(value).replace("'", '"')
    return f'user_pref("{name}", {text});\n'


class Firefox:
    """A headless firefox-esr with a profile in `profile_dir`, driven over Marionette."""

    def __init__(self, profile_dir, name="firefox"):
        self.profile = Path(profile_dir)
        self.name = name
        self.port = _free_port()
        self.log_path = self.profile.parent / f"{self.profile.name}.log"
        self.process = None
        self.marionette = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.quit()

    def start(self):
        self.profile.mkdir(parents=True, exist_ok=True)
        prefs = dict(PREFS, **{"marionette.port": self.port})
        (self.profile / "user.js").write_text("".join(_pref_line(k, v) for k, v in prefs.items()))
        with open(self.log_path, "ab") as log:
            # A session of its own, so quit() can kill the content processes with the parent.
            self.process = subprocess.Popen(
                [FIREFOX, "--headless", "--marionette", "--no-remote", "--new-instance",
                 "--profile", str(self.profile)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env=dict(os.environ, MOZ_HEADLESS="1", MOZ_CRASHREPORTER_DISABLE="1"))
        try:
            self._connect()
        except BaseException:
            self.quit()
            raise

    def _connect(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode} on start:\n{self.log()}")
            if self._listening():
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}'s Marionette did not listen within {START_TIMEOUT_S} s:\n{self.log()}")
            time.sleep(POLL_S)
        self.marionette = Marionette(host="127.0.0.1", port=self.port, socket_timeout=START_TIMEOUT_S)
        self.marionette.start_session(timeout=START_TIMEOUT_S)

    def _listening(self):
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def quit(self):
        """End the session and kill the browser and every process it started; safe to call twice."""
        if self.marionette is not None:
            try:
                self.marionette.delete_session()
            except (MarionetteException, OSError):
                pass   # the browser is killed below either way
            self.marionette = None
        if self.process is not None and self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(QUIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(QUIT_TIMEOUT_S)
        if self.process is not None:
            self._signal(signal.SIGKILL)   # content processes left behind by the parent
            self._wait_group_gone()
        self.process = None

    def _wait_group_gone(self):
        deadline = time.monotonic() + QUIT_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(POLL_S)

    def _signal(self, signum):
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def log(self, tail_chars=6000):
        """The end of the browser's output (page console lines included)."""
        try:
            return self.log_path.read_text(errors="replace")[-tail_chars:]
        except FileNotFoundError:
            return ""

    # Driving ----------------------------------------------------------------------------

    @property
    def url(self):
        return self.marionette.get_url()

    def navigate(self, url):
        self.marionette.navigate(url)

    def run(self, script, *args):
        """Run `script` (a function body: `return ...`, arguments as `arguments[i]`) in the page."""
        return self.marionette.execute_script(script, script_args=args, sandbox=None)

    def element(self, css):
        return self.marionette.find_element(By.CSS_SELECTOR, css)

    def click(self, css):
        """A real click (input events through the browser), once the element shows."""
        self.wait_for("const e = document.querySelector(arguments[0]); return !!e && !e.disabled && "
                      "e.getClientRects().length > 0", css, what=f"{css} to be clickable")
        self.element(css).click()

    def type(self, css, text):
        field = self.element(css)
        field.clear()
        field.send_keys(text)

    def attribute(self, css, name):
        """The attribute `name` of the first element matching `css` (None if either is missing)."""
        return self.run(_ATTRIBUTE, css, name)

    def wait_for(self, condition, *args, timeout_s=10, what=None):
        """Poll `condition` (a function body returning a truthy value when met) until it holds;
        returns its value. Fails after `timeout_s` with what it last returned."""
        return self._poll(lambda: self.run(condition, *args), bool, timeout_s, what or condition)

    def attribute_is(self, css, name, value, timeout_s=10):
        """Wait until the first element matching `css` has attribute `name` equal to `value`."""
        self._poll(lambda: self.attribute(css, name), lambda now: now == value, timeout_s,
                   f"{css}[{name}={value!r}]")

    def text_is(self, css, text, timeout_s=10):
        """Wait until the first element matching `css` reads `text` (spaces around trimmed)."""
        self._poll(lambda: self.run(_TEXT, css), lambda now: now == text, timeout_s, f"{css} to read {text!r}")

    def _poll(self, read, ok, timeout_s, what):
        return wait_for(read, f"{self.name}: {what}", timeout_s, until=ok, poll_s=POLL_S)

    def screenshot(self, path):
        """A PNG of what the window shows (the whole document would repeat sticky headers)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(self.marionette.screenshot(format="binary", full=False))


_ATTRIBUTE = "const e = document.querySelector(arguments[0]); return e && e.getAttribute(arguments[1])"
_TEXT = "const e = document.querySelector(arguments[0]); return e && e.textContent.trim()"
