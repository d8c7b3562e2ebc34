// Approving payments on PayPal from the caller's call page: the call's payment, and tips. Each
// is its own PayPal order. PayPal's approval page opens in a popup (window.open from the click)
// or, when the browser blocks popups, in this tab. Once the payer approves, PayPal sends them to
// our /paypal/return, which has the order captured and redirects to /call/<id>; the call page
// then hears of the capture in a call_state ("payment_captured", "tip_received").
//
// In a popup, that /call/<id> page must not take the call over from the page that opened it
// (the opener would lose the call, and closing the popup would leave the call with no page):
// pages/call.js asks `openerOfCall()` and, when the opener shows the same call, only tells it
// that the payer is back (`reportReturn()`) and says so. PayPal's Cancel comes back to
// /call/<id>?…token=<order id>; the approved path (through /paypal/return) comes back without
// a query: that is how a returning page tells the two apart.

const WINDOW_NAME = "interkanect-paypal";
const RETURN_MESSAGE = "interkanect:paypal-return";
const SAME_TAB_KEY = "interkanect.paypal";   // sessionStorage {callId, purpose, key, orderId}: this tab went to PayPal
const CONFIRM_PATIENCE_MS = 15_000;          // after an approval, how long before offering PayPal again
const POPUP = { width: 520, height: 720 };

// This page's approvals (the call's payment, the tips): PayPal's popups report back to them.
const approvals = [];

/** The opener window when this page is PayPal's popup coming back to a call page of `callId`. */
export function openerOfCall(callId) {
  try {
    const opener = window.opener;
    if (!opener || opener.closed || opener.location.origin !== location.origin) return null;
    return opener.interkanectCall === callId ? opener : null;
  } catch {
    return null;  // an opener of another origin
  }
}

/** Tell the call page that opened this popup that the payer is back. Returns "approved" or "cancelled". */
export function reportReturn(opener, callId) {
  const outcome = new URLSearchParams(location.search).has("token") ? "cancelled" : "approved";
  opener.postMessage({ type: RETURN_MESSAGE, callId, outcome }, location.origin);
  return outcome;
}

/** What PayPal's popup (this page) was opened for by `opener`: "payment" or "tip". */
export function returnPurpose(opener) {
  try {
    return opener.interkanectPayPalPurpose?.(window) || "payment";
  } catch {
    return "payment";
  }
}

/** The order of a PayPal approval link (`…?token=<order id>`), or null. */
export function orderOfApproveUrl(approveUrl) {
  try {
    return new URL(approveUrl).searchParams.get("token");
  } catch {
    return null;
  }
}

function popupFeatures() {
  const left = Math.max(0, Math.round(window.screenX + (window.outerWidth - POPUP.width) / 2));
  const top = Math.max(0, Math.round(window.screenY + (window.outerHeight - POPUP.height) / 2));
  return `popup,width=${POPUP.width},height=${POPUP.height},left=${left},top=${top}`;
}

// What this page's load says about a trip to PayPal in this tab, read once (the first approval
// asks): PayPal's Cancel (?token=) or our return after an approval (remembered before leaving).
let arrival;
function takeArrival() {
  if (arrival !== undefined) return arrival;
  arrival = null;
  let went = null;
  try {
    went = JSON.parse(sessionStorage.getItem(SAME_TAB_KEY) || "null");
  } catch { /* nothing kept */ }
  sessionStorage.removeItem(SAME_TAB_KEY);
  const callId = location.pathname.split("/")[2];
  if (went?.callId !== callId) went = null;
  const token = new URLSearchParams(location.search).get("token");
  if (token) {
    history.replaceState(history.state, "", location.pathname);   // a reload is not a new cancel
    arrival = { ...(went || {}), orderId: token, step: "cancelled" };
    if (went && went.orderId && went.orderId !== token) arrival.key = null;   // another order's cancel
    return arrival;
  }
  const navigation = performance.getEntriesByType("navigation")[0];
  if (went && navigation?.type === "navigate") arrival = { ...went, step: "approved" };
  return arrival;
}

/** This page's return from PayPal in this tab for `purpose` ("tip"), while no approval has taken it. */
export function pendingArrival(purpose) {
  const came = takeArrival();
  return came && came.purpose === purpose ? came : null;
}

// PayPal's popup came back to our /call/<id> (pages/call.js): hand it to the approval it is for.
function onMessage(event) {
  const data = event.data;
  if (event.origin !== location.origin || data?.type !== RETURN_MESSAGE) return;
  const mine = approvals.filter((approval) => approval.callId === data.callId);
  if (!mine.length) return;
  const popup = event.source;
  const owner = ownerOf(mine, popup);
  if (!owner) {
    popup?.close();   // nothing to pay any more: the popup has nothing left to show
    return;
  }
  owner.onReturn(popup, data.outcome);
}

// The approval that opened `popup`; else (this page was reloaded meanwhile) the one awaited.
function ownerOf(candidates, popup) {
  return candidates.find((approval) => popup && approval.window === popup)
    || candidates.find((approval) => approval.key !== null) || null;
}

window.addEventListener("message", onMessage);
// Asked by the popup's page (returnPurpose) to say the right words.
window.interkanectPayPalPurpose = (popup) => ownerOf(approvals, popup)?.purpose || null;

/**
 * One thing at a time to approve on PayPal (`purpose` "payment" or "tip"), identified by `key`.
 * `step`: "ready" (approve now), "open" (PayPal's popup is open), "blocked" (the browser
 * blocked the popup and this approval does not leave the page by itself), "approved"
 * (approved on PayPal, waiting for the capture), "unconfirmed" (approved a while ago and
 * still not captured: approve again if you did not finish), "cancelled" (cancelled on
 * PayPal). `onChange` runs when it changes between call_states (the popup closed or came
 * back, patience ran out).
 */
export class PayPalApproval {
  constructor(callId, purpose, onChange) {
    this.callId = callId;
    this.purpose = purpose;
    this.onChange = onChange;
    this.key = null;          // what is awaited now
    this.orderId = null;
    this.step = "ready";
    this.window = null;       // PayPal's popup, while this page holds it
    this.approvedAt = null;
    takeArrival();   // now, so that a reload is not read as a new return
    approvals.push(this);
  }

  /** Now awaiting `key` (its PayPal order `orderId`): its step starts afresh, or where this tab left it. */
  follow(key, orderId = null) {
    if (key === this.key) return;
    if (this.key !== null) this.closeWindow();   // a popup of what was awaited before has nothing left to do
    this.key = key;
    this.orderId = orderId;
    const came = takeArrival();
    const matches = came && came.purpose !== undefined && came.purpose !== this.purpose ? false
      : came && (came.key === key || (orderId !== null && came.orderId === orderId));
    if (matches) arrival = null;
    this.step = null;
    this.setStep(matches ? came.step : "ready", false);
  }

  /** Nothing is awaited any more: PayPal's popup has nothing left to show. */
  release() {
    this.closeWindow();
    this.forget();
  }

  /** Nothing is awaited any more, but a popup still open is left to the payer. */
  forget() {
    this.key = null;
    this.orderId = null;
    this.window = null;
    this.setStep("ready", false);
  }

  /**
   * Show PayPal's page in a popup, or in this tab when popups are blocked. With `leave`
   * false a blocked popup only sets the step "blocked" (see `openHere()`).
   */
  open(approveUrl, { leave = true } = {}) {
    if (this.window && !this.window.closed) {
      this.window.focus();
      return;
    }
    const name = this.purpose === "payment" ? `${WINDOW_NAME}-${this.callId}` : `${WINDOW_NAME}-${this.purpose}-${this.callId}`;
    const popup = window.open(approveUrl, name, popupFeatures());
    if (!popup) {
      if (leave) this.openHere(approveUrl); else this.setStep("blocked");
      return;
    }
    this.window = popup;
    this.setStep("open");
  }

  /** PayPal's page in this tab; the page that comes back (returned or cancelled) takes it from here. */
  openHere(approveUrl) {
    sessionStorage.setItem(SAME_TAB_KEY, JSON.stringify({ callId: this.callId, purpose: this.purpose, key: this.key,
      orderId: this.orderId }));
    location.assign(approveUrl);
  }

  onReturn(popup, outcome) {
    if (this.key === null || outcome === "cancelled") {
      popup?.close();   // nothing to pay any more, or nothing paid: the popup has nothing left to show
      if (this.window === popup) this.window = null;
      if (this.key !== null) this.setStep("cancelled");
      return;
    }
    this.window = popup;   // closed when the payment is captured
    this.setStep("approved");
  }

  /** Every quarter second: a popup the payer closed, patience with a capture that does not come. */
  tick() {
    if (this.window?.closed) {
      this.window = null;
      if (this.step === "open") this.setStep("ready");
    }
    if (this.step === "approved" && performance.now() - this.approvedAt > CONFIRM_PATIENCE_MS) {
      this.setStep("unconfirmed");
    }
  }

  setStep(step, notify = true) {
    if (step === this.step) return;
    this.step = step;
    if (step === "approved") this.approvedAt = performance.now();
    if (notify) this.onChange(step);
  }

  closeWindow() {
    if (this.window && !this.window.closed) this.window.close();
    this.window = null;
  }
}

/** The caller's payment for the call on this page: follows `call_state.payment`. */
export class PayPalCheckout extends PayPalApproval {
  constructor(callId, onChange) {
    super(callId, "payment", onChange);
  }

  /** Every call_state: follow the awaited payment; when none is awaited any more, close PayPal's popup. */
  update(state) {
    const payment = state.state === "awaiting_payment" ? state.payment : null;
    if (!payment) {
      if (state.state !== "awaiting_payment") this.release();
      return;
    }
    this.follow(payment.order_id, payment.order_id);
  }
}
