// What every page does first: learn who is looking, draw the shared navigation, and for a
// logged-in member open the live connection that makes them online while the page is open.

import * as api from "./api.js";
import { LiveConnection } from "./live.js";
import { sentence } from "./forms.js";
import { PresenceBoard } from "./presence.js";
import { IncomingCalls, offerNotifications } from "./incoming.js";
import { showFollowedOnline } from "./following.js";

const LIVE_STATE_WORDS = {
  connecting: "Connecting…", open: "Live", closed: "Reconnecting…", ended: "Offline",
  // The server took no more pages of this account (policy pages_per_member_max); it keeps trying.
  too_many_pages: "Too many pages open: close one",
};

// Pages that need no session: when it ends, the login page need not lead back to them.
const NO_RETURN = new Set(["/", "/login", "/signup", "/reset"]);

export function goToLogin() {
  const here = location.pathname + location.search;
  location.assign(NO_RETURN.has(location.pathname) ? "/login" : `/login?next=${encodeURIComponent(here)}`);
}

function link(id, href, text) {
  const a = document.createElement("a");
  a.id = id;
  a.href = href;
  a.textContent = text;
  // A section's own pages count as it: /history/<call id> is still History.
  const here = location.pathname;
  if (here === href || (href !== "/" && here.startsWith(href + "/"))) a.setAttribute("aria-current", "page");
  return a;
}

function liveIndicator(live) {
  const state = document.createElement("span");
  state.id = "live-state";
  state.className = "live-state";
  state.setAttribute("role", "status");
  const show = (value) => {
    state.dataset.state = value;
    state.textContent = LIVE_STATE_WORDS[value];
  };
  show(live.state);
  live.on("state", show);
  return state;
}

function logOutButton(live) {
  const button = document.createElement("button");
  button.id = "logout-button";
  button.type = "button";
  button.className = "button button--quiet";
  button.textContent = "Log out";
  button.addEventListener("click", async () => {
    button.disabled = true;
    live.stop();  // ours to end: the server's 4401 would otherwise send us to /login
    try {
      await api.post("/api/logout");
    } finally {
      location.assign("/");
    }
  });
  return button;
}

function drawNav(me, live) {
  const nav = document.getElementById("site-nav");
  const items = [link("nav-directory", "/", "Directory")];
  if (me) {
    items.push(liveIndicator(live), link("nav-history", "/history", "History"),
      link("nav-earnings", "/earnings", "Earnings"));
    if (me.operator) items.push(link("nav-operator", "/operator/refunds", "Operator"));
    items.push(link("nav-account", "/account", "Account"), logOutButton(live));
  } else {
    items.push(link("nav-login", "/login", "Log in"), link("nav-signup", "/signup", "Sign up"));
  }
  nav.replaceChildren(...items);
}

// Every page says so when payments are not real: nobody should take fake money for real.
const TEST_PAYMENT_WORDS = {
  emulator: "Test payments: PayPal here is the local PayPal emulator. No real money moves.",
  sandbox: "Test payments: PayPal here is PayPal's sandbox. No real money moves.",
};

async function drawFooter() {
  let site;
  try {
    site = await api.get("/api/site");
  } catch (error) {
    console.error("cannot learn which PayPal this site uses", error);
    return;
  }
  const words = TEST_PAYMENT_WORDS[site.paypal];
  if (!words) return;  // live: real money, nothing to warn about
  const footer = document.createElement("footer");
  footer.id = "site-footer";
  footer.className = "site-footer";
  const note = document.createElement("p");
  note.id = "test-payments";
  note.className = "site-footer__note";
  note.dataset.paypal = site.paypal;
  note.textContent = words;
  footer.append(note);
  document.body.append(footer);
}

function openLive(onSessionEnded) {
  const live = new LiveConnection({ onSessionEnded, isLoggedIn: async () => (await api.me()) !== null });
  window.addEventListener("online", () => live.retryNow());
  live.start();
  return live;
}

/**
 * Start the page. Returns {me, live, presence}; for a visitor `me`, `live` and `presence`
 * are null. With `memberOnly`, a visitor is sent to the login page instead.
 * `onSessionEnded` runs when the server ends the session (logged out elsewhere, expired).
 * A member's every page rings for incoming calls; `askNotifications` offers (politely, on
 * a button) to turn on system notifications for them.
 */
export async function startPage({ memberOnly = false, onSessionEnded = goToLogin, askNotifications = true } = {}) {
  drawFooter();  // not awaited: the page need not wait for its footer
  const me = await api.me();
  if (!me && memberOnly) {
    goToLogin();
    return new Promise(() => {});  // the page is going away; nothing more to do
  }
  const live = me ? openLive(onSessionEnded) : null;
  document.body.dataset.session = me ? "member" : "visitor";
  drawNav(me, live);
  if (live) {
    new IncomingCalls({ me, live });
    showFollowedOnline(live);
    if (askNotifications) offerNotifications();
  }
  return { me, live, presence: live ? new PresenceBoard(live) : null };
}

export { pageReady } from "./ready.js";

/** Run a page's main(); a failure it did not expect is shown at the top of the page. */
export function runPage(main) {
  main().catch((error) => {
    console.error(error);
    document.body.dataset.ready = "error";
    showPageError(error instanceof api.ApiError ? sentence(error.message)
      : "This page failed to load; reload to try again.");
  });
}

function showPageError(message) {
  const main = document.getElementById("main");
  const alert = document.createElement("p");
  alert.className = "notice notice--error";
  alert.setAttribute("role", "alert");
  alert.textContent = message;
  main.prepend(alert);
}
