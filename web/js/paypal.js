// Paying for a call with PayPal, from the caller's call page. PayPal's approval page opens in
// a popup (window.open from the click) or, when the browser blocks popups, in this tab. Once
// the payer approves, PayPal sends them to our /paypal/return, which captures the payment and
// redirects to /call/<id>; the call then resumes by itself (event "payment_captured").
//
// In a popup, that /call/<id> page must not take the call over from the page that opened it
// (the opener would lose the call, and closing the popup would leave the call with no page):
// pages/call.js asks `openerOfCall()` and, when the opener shows the same call, only tells it
// that the payer is back (`reportReturn()`) and says so. PayPal's Cancel comes back to
// /call/<id>?token=<order id>; the approved path (through /paypal/return) comes back without
// a query: that is how a returning page tells the two apart.

const WINDOW_NAME = "interkanect-paypal";
const RETURN_MESSAGE = "interkanect:paypal-return";
const SAME_TAB_KEY = "interkanect.paypal";   // sessionStorage {callId, orderId}: this tab went to PayPal
const CONFIRM_PATIENCE_MS = 15_000;          // after an approval, how long before offering PayPal again
const POPUP = { width: 520, height: 720 };

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

function popupFeatures() {
  const left = Math.max(0, Math.round(window.screenX + (window.outerWidth - POPUP.width) / 2));
  const top = Math.max(0, Math.round(window.screenY + (window.outerHeight - POPUP.height) / 2));
  return `popup,width=${POPUP.width},height=${POPUP.height},left=${left},top=${top}`;
}

/**
 * The caller's payment for the call on this page. `step` says what the payment panel shows:
 * "ready" (pay now), "open" (PayPal's popup is open), "approved" (approved on PayPal, waiting
 * for the capture), "unconfirmed" (approved a while ago and still not captured: pay again if
 * you did not finish), "cancelled" (cancelled on PayPal). `onChange` runs when it changes
 * between call_states (the popup closed or came back, patience ran out).
 */
export class PayPalCheckout {
  constructor(callId, onChange) {
    this.callId = callId;
    this.onChange = onChange;
    this.orderId = null;      // the order of the payment now awaited
    this.step = "ready";
    this.window = null;       // PayPal's popup, while this page holds it
    this.approvedAt = null;
    this.arrival = this.readArrival();
    window.addEventListener("message", (event) => this.onMessage(event));
  }

  // This page loaded coming back from PayPal in this tab: PayPal's Cancel (?token=) or our return.
  readArrival() {
    const token = new URLSearchParams(location.search).get("token");
    if (token) {
      history.replaceState(history.state, "", location.pathname);   // a reload is not a new cancel
      return { orderId: token, step: "cancelled" };
    }
    let went = null;
    try {
      went = JSON.parse(sessionStorage.getItem(SAME_TAB_KEY) || "null");
    } catch { /* nothing kept */ }
    sessionStorage.removeItem(SAME_TAB_KEY);
    const navigation = performance.getEntriesByType("navigation")[0];
    if (went?.callId === this.callId && navigation?.type === "navigate") {
      return { orderId: went.orderId, step: "approved" };
    }
    return null;
  }

  /** Every call_state: follow the awaited payment; when none is awaited any more, close PayPal's popup. */
  update(state) {
    const payment = state.state === "awaiting_payment" ? state.payment : null;
    if (!payment) {
      if (state.state !== "awaiting_payment") {
        this.closeWindow();
        this.orderId = null;
        this.setStep("ready", false);
      }
      return;
    }
    if (payment.order_id === this.orderId) return;
    this.orderId = payment.order_id;
    const arrival = this.arrival?.orderId === payment.order_id ? this.arrival : null;
    this.arrival = null;
    this.step = null;   // a new payment: its step starts afresh
    this.setStep(arrival ? arrival.step : "ready", false);
  }

  /** The Pay button: show PayPal's page in a popup, or in this tab when popups are blocked. */
  open(approveUrl) {
    if (this.window && !this.window.closed) {
      this.window.focus();
      return;
    }
    const popup = window.open(approveUrl, `${WINDOW_NAME}-${this.callId}`, popupFeatures());
    if (!popup) {
      sessionStorage.setItem(SAME_TAB_KEY, JSON.stringify({ callId: this.callId, orderId: this.orderId }));
      location.assign(approveUrl);
      return;
    }
    this.window = popup;
    this.setStep("open");
  }

  // PayPal's popup came back to our /call/<id> (pages/call.js): approved, or cancelled.
  onMessage(event) {
    const data = event.data;
    if (event.origin !== location.origin || data?.type !== RETURN_MESSAGE || data.callId !== this.callId) return;
    const popup = event.source;
    if (this.orderId === null || data.outcome === "cancelled") {
      popup?.close();   // nothing to pay any more, or nothing paid: the popup has nothing left to show
      if (this.window === popup) this.window = null;
      if (this.orderId !== null) this.setStep("cancelled");
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
