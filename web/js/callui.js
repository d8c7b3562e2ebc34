// What the call page shows for a `call_state`: the status line and its countdown, the one
// panel that fits the state and the member's role, the suspended overlay, the time warnings
// and the end in words. It draws; the page module decides what to send.

import { avatar } from "./avatar.js";
import { endReasonWords, otherSide } from "./endreasons.js";
import { clockText, lengthWords, msUntil } from "./clock.js";
import { clearErrors, sentence } from "./forms.js";
import { dollarsText, minutesText, priceText, termsText } from "./terms.js";

// Warnings before the paid time runs out, in seconds (the host then decides on more time).
export const WARN_AT_S = [60, 10];
const PANELS = ["ringing-panel", "terms-panel", "approval-panel", "payment-panel", "running-panel", "extend-panel",
  "ended-panel"];

/** The status line: words, and what its countdown counts to (server epoch ms) and says. */
export function statusOf(state) {
  const other = otherSide(state).name;
  const away = otherSide(state).connected ? "" : ` (${other} is away)`;
  switch (state.state) {
    case "ringing": return { text: `Calling ${other}…`, to: state.deadline_ms, after: "left to answer" };
    case "negotiating":
      return { text: `Talking terms with ${other}${away}`, to: state.deadline_ms, after: "left to agree" };
    case "awaiting_payment":
      return { text: `Suspended: waiting for payment${away}`, to: state.deadline_ms, after: "left to pay" };
    case "running":
      if (state.paused) {
        return { text: `Paused: ${other} is away`, to: state.grace_deadline_ms, after: "to come back" };
      }
      return { text: `In a call with ${other}`, to: state.ends_at_ms, after: "left" };
    case "extension_offered": return { text: `Time is up${away}`, to: state.deadline_ms, after: "to decide" };
    case "ended": return { text: "Call ended", to: null };
    default: return { text: state.state, to: null };
  }
}


// The payment panel at each step (payment-panel[data-step]); `button`: the PayPal button shows.
const PAYMENT_WORDS = {
  host: { heading: "Payment", text: "Waiting for the caller to pay…",
    hint: (state) => `${state.caller.name} pays with PayPal. `
      + "You are reconnected as soon as the payment is confirmed." },
  preparing: { heading: "Payment", text: "Preparing the PayPal payment…" },
  ready: { heading: "Pay to start", text: "You agreed to these terms. Pay with PayPal to start the paid time.",
    button: "pay",
    hint: "PayPal opens in a new window. The call resumes by itself as soon as the payment is confirmed." },
  open: { heading: "Paying with PayPal", text: "Finish the payment in the PayPal window.", button: "show",
    hint: "The call resumes by itself as soon as the payment is confirmed." },
  approved: { heading: "Payment approved", text: "You approved the payment on PayPal. Confirming it…" },
  unconfirmed: { heading: "Payment", text: "PayPal has not confirmed the payment yet. If you did not finish "
    + "paying, pay again.", button: "pay" },
  cancelled: { heading: "Pay to start", text: "You cancelled on PayPal; nothing was paid. Pay when you are ready.",
    button: "pay" },
};

function byId(id) {
  return document.getElementById(id);
}

function show(id, visible) {
  byId(id).hidden = !visible;
}

function text(id, words) {
  const node = byId(id);
  if (node.textContent !== words) node.textContent = words;   // a live region speaks changes only
}

// Nothing has the focus (its element was hidden, like the Pay button once pressed).
function lostFocus() {
  const active = document.activeElement;
  return !active || active === document.body || active.closest("[hidden]") !== null;
}

export class CallView {
  constructor(me) {
    this.me = me;
    this.state = null;
    this.lastLeftMs = null;     // paid time left at the previous tick, for the warnings
    this.endedBy = { byMe: false };
    this.paymentStep = "ready";   // the caller's PayPal payment (js/paypal.js)
    this.tile = byId("remote-tile");
  }

  /** Draw a call_state; returns nothing, the page decides about media. */
  render(state, previous) {
    this.state = state;
    const section = byId("call");
    section.dataset.state = state.state;
    section.dataset.role = state.role;
    section.dataset.event = state.event;
    const other = otherSide(state);
    text("call-title", `Call with ${other.name}`);
    document.title = `Call with ${other.name} · interKanect`;
    text("remote-name", other.name);
    byId("remote-video").setAttribute("aria-label", `${other.name}'s video`);
    if (!byId("remote-avatar").firstChild) {
      byId("remote-avatar").append(avatar({ id: other.id, display_name: other.name, has_avatar: false }, "large"));
    }
    this.renderStatus(state);
    PANELS.forEach((id) => show(id, false));
    if (state.state !== "awaiting_payment") delete byId("payment-panel").dataset.step;
    this.renderAway(state);
    this.renderPanel(state, previous);
    show("suspended-overlay", state.state === "awaiting_payment");
    show("hangup-button", state.state !== "ended");
    show("room", !["loading", "ringing"].includes(state.state));   // chat, whiteboard, log: once answered
    if (state.state !== "running") this.hideWarning();
    this.renderPlaceholder();
    this.tick();
  }

  renderStatus(state) {
    const status = statusOf(state);
    const line = byId("call-status");
    line.textContent = status.text;
    line.dataset.state = state.state;
    line.dataset.paused = String(state.paused);
  }

  renderAway(state) {
    const other = otherSide(state);
    const away = !other.connected && !["ringing", "ended"].includes(state.state) && state.grace_deadline_ms;
    show("peer-away", Boolean(away));
    if (away) {
      byId("peer-away").replaceChildren(`${other.name} is away. The call ends unless they are back within `,
        countdownSpan(state.grace_deadline_ms), ".");
    }
  }

  renderPanel(state, previous) {
    const host = state.role === "host";
    switch (state.state) {
      case "ringing": return this.renderRinging(state);
      case "negotiating": return host ? this.renderTermsForm(state, previous) : this.renderApproval(state);
      case "awaiting_payment": return this.renderPayment(state);
      case "running": return this.renderRunning(state);
      case "extension_offered": return this.renderExtension(state);
      case "ended": return this.renderEnded(state, previous);
      default: return undefined;
    }
  }

  renderRinging(state) {
    show("ringing-panel", true);
    byId("ringing-text").replaceChildren(`${state.host.name}'s pages are ringing. If nobody answers within `,
      countdownSpan(state.deadline_ms), " it is a missed call.");
  }

  renderTermsForm(state, previous) {
    show("terms-panel", true);
    const me = this.me;
    const canCharge = me.tier === "upgraded" && me.can_charge;
    show("price-field", canCharge);
    const caller = state.caller.name;
    text("terms-hint", !canCharge && me.tier !== "upgraded"
      ? `Free tier: calls are free, and a session lasts at most ${lengthWords(state.limits.free_tier_cap_s)}, `
        + "talk included. Set the length and offer it. To charge for your calls, upgrade on your account page."
      : !canCharge ? "Add a PayPal payout email in your account to charge; until then your calls are free."
        : `Agree on a price and length with ${caller} out loud, then offer them here. `
          + `${caller} pays before the paid time starts.`);
    if (state.event === "renegotiate") {
      text("terms-hint", `${caller} asked to renegotiate. Offer new terms when you are ready.`);
    }
    const proposal = state.proposal;
    show("proposal-sent", Boolean(proposal));
    text("terms-heading", proposal ? "Change the terms" : "Set the terms");
    text("propose-button", proposal ? "OK, offer new terms" : "OK, offer these terms");
    if (proposal) {
      text("proposal-sent-terms", termsText(proposal));
      text("proposal-sent-fingerprint", proposal.fingerprint);
      text("proposal-sent-text", `Waiting for ${caller} to pay, renegotiate or decline.`);
    }
    const form = byId("terms-form");
    const fresh = !previous || previous.state !== "negotiating" || previous.round !== state.round;
    if (fresh) clearErrors(form);
    const last = proposal || state.agreed;
    if (last && !form.elements.minutes.value) form.elements.minutes.value = minutesText(last.length_s);
    if (last && canCharge && !form.elements.price.value) form.elements.price.value = dollarsText(last.price_cents);
  }

  renderApproval(state) {
    show("approval-panel", true);
    const proposal = state.proposal;
    const host = state.host.name;
    show("approval-terms", Boolean(proposal));
    show("approval-waiting", !proposal);
    text("approval-heading", proposal ? `${host}'s terms` : "Terms");
    if (!proposal) {
      text("approval-waiting-text", state.event === "renegotiate"
        ? `You asked to renegotiate. ${host} may offer new terms.`
        : `Talk it over with ${host}. Their terms appear here for you to approve.`);
      return;
    }
    const approval = byId("approval-panel");
    approval.dataset.proposal = String(proposal.proposal);
    text("terms-price", priceText(proposal.price_cents));
    text("terms-length", lengthWords(proposal.length_s));
    text("terms-fingerprint", proposal.fingerprint);
    text("pay-button", proposal.price_cents ? `Pay ${priceText(proposal.price_cents)}` : "Start the free call");
  }

  /** What the caller's PayPal payment is at (js/paypal.js), between call_states. */
  setPaymentStep(step) {
    this.paymentStep = step;
    if (this.state?.state === "awaiting_payment") this.renderPayment(this.state);
  }

  renderPayment(state) {
    show("payment-panel", true);
    const terms = state.agreed;
    if (terms) {
      text("payment-terms", termsText(terms));
      text("payment-fingerprint", terms.fingerprint);
    }
    const caller = state.role === "caller";
    const step = !caller ? "host" : state.payment ? this.paymentStep || "ready" : "preparing";
    const panel = byId("payment-panel");
    const before = panel.dataset.step;
    panel.dataset.step = step;
    const words = PAYMENT_WORDS[step];
    text("payment-heading", words.heading);
    text("payment-text", words.text);
    text("suspended-text", caller
      ? "Video and sound are off until you have paid; then you are reconnected automatically."
      : `Video and sound are off until ${state.caller.name}'s payment is confirmed; `
        + "then you are reconnected automatically.");
    const button = byId("paypal-button");
    show("paypal-button", Boolean(words.button));
    if (words.button && terms) {
      text("paypal-button", words.button === "show" ? "Show the PayPal window"
        : `Pay ${priceText(terms.price_cents)} with PayPal`);
    }
    show("payment-hint", Boolean(words.hint));
    if (words.hint) text("payment-hint", typeof words.hint === "function" ? words.hint(state) : words.hint);
    // The Pay button the caller pressed is gone: the PayPal button takes the focus once it is there.
    if (words.button && before === "preparing" && lostFocus()) button.focus();
  }

  renderRunning(state) {
    show("running-panel", true);
    text("running-heading", state.paused ? "Time left (paused)" : "Time left");
    text("running-text", state.paused
      ? "The clock stops while one of you is away: nobody pays for time apart."
      : "The call is not cut when the time is up: the host can offer to extend it.");
    if (state.agreed) {
      text("running-terms", termsText(state.agreed));
      text("running-fingerprint", state.agreed.fingerprint);
    }
  }

  renderExtension(state) {
    show("extend-panel", true);
    const host = state.role === "host";
    text("extend-heading", host ? "Time is up — extend?" : "Time is up");
    show("extend-actions", host);
    byId("extend-text").replaceChildren(...(host
      ? [`Extend to agree on more time with ${state.caller.name}, or end the call. You have `,
        countdownSpan(state.deadline_ms), " to decide."]
      : [`Waiting for the host, ${state.host.name}, to decide whether to extend the call (`,
        countdownSpan(state.deadline_ms), " left)."]));
  }

  renderEnded(state, previous) {
    show("ended-panel", true);
    const awaySide = previous && !otherSide(previous).connected ? otherSide(previous).name : null;
    text("end-reason", endReasonWords(state, { byMe: this.endedBy.byMe, awaySide }));
    byId("end-reason").dataset.reason = state.end_reason || "";
    show("ended-terms", Boolean(state.agreed));
    if (state.agreed) {
      text("ended-terms", `Last agreed terms: ${termsText(state.agreed)} (terms ${state.agreed.fingerprint}).`);
    }
    const back = byId("back-link");
    if (state.role === "caller") {
      back.href = `/m/${state.host.id}`;
      back.textContent = `Back to ${state.host.name}'s page`;
    }
  }

  /** An ended call known only from the history API (the page was opened after the end). */
  renderEndedFromHistory(call) {
    const role = call.role;
    const me = { id: this.me.id, name: this.me.display_name, connected: false };
    const them = { id: call.with.id, name: call.with.name, connected: false };
    const rounds = call.rounds || [];
    this.render({
      call_id: call.id, role, state: "ended", event: "ended", host: role === "host" ? me : them,
      caller: role === "caller" ? me : them, round: rounds.length, proposal: null,
      agreed: rounds[rounds.length - 1] || null,
      deadline_ms: null, media: false, remaining_s: 0, paused: false, ends_at_ms: null, grace_deadline_ms: null,
      end_reason: call.end_reason, ice_servers: [],
    }, null);
  }

  // The remote tile: the other side's video once it plays, otherwise a placeholder saying why.
  setMediaState(mediaState) {
    this.tile.dataset.media = mediaState;
    this.renderPlaceholder();
  }

  renderPlaceholder() {
    const state = this.state;
    const connected = this.tile.dataset.media === "connected";
    show("remote-placeholder", !connected || !state || state.state === "ended");
    if (!state) return;
    const other = otherSide(state);
    text("remote-placeholder-text",
      state.state === "ended" ? "Call ended"
        : state.state === "ringing" ? `Calling ${other.name}…`
          : !other.connected ? `${other.name} is away`
            : state.media ? "Connecting video…" : "Video is off");
  }

  /** Every quarter second: the countdowns, and the warnings before the paid time ends. */
  tick() {
    const state = this.state;
    if (!state) return;
    const status = statusOf(state);
    const countdown = byId("call-countdown");
    countdown.hidden = !status.to;
    if (status.to) countdown.textContent = `${clockText(msUntil(status.to))} ${status.after}`;
    for (const span of document.querySelectorAll("[data-countdown-to]")) {
      span.textContent = clockText(msUntil(Number(span.dataset.countdownTo)));
    }
    if (state.state === "awaiting_payment" && state.deadline_ms) {
      text("suspended-countdown", clockText(msUntil(state.deadline_ms)));
    }
    if (state.state === "running") this.tickRunning(state);
    else this.lastLeftMs = null;
  }

  tickRunning(state) {
    const leftMs = state.paused || !state.ends_at_ms ? state.remaining_s * 1000 : msUntil(state.ends_at_ms);
    text("time-left", clockText(leftMs));
    byId("time-left").dataset.paused = String(state.paused);
    if (!state.paused && this.lastLeftMs !== null) {
      for (const seconds of WARN_AT_S) {
        if (this.lastLeftMs > seconds * 1000 && leftMs <= seconds * 1000) this.warn(seconds);
      }
    }
    this.lastLeftMs = state.paused ? null : leftMs;
  }

  warn(seconds) {
    const warning = byId("time-warning");
    const left = seconds >= 60 ? lengthWords(seconds) : `${seconds} seconds`;
    warning.textContent = this.state.role === "host"
      ? `${left} left. When the time is up you can offer to extend.`
      : `${left} left. When the time is up the host can offer to extend.`;
    warning.dataset.warnAt = String(seconds);
    warning.hidden = false;
  }

  hideWarning() {
    byId("time-warning").hidden = true;
  }

  /** An error from the server (or the page) in words, with its code for tests. */
  showError(error) {
    const box = byId("call-error");
    box.textContent = sentence(error.message);
    box.dataset.errorCode = error.code;
    box.hidden = false;
  }

  clearError() {
    const box = byId("call-error");
    box.hidden = true;
    delete box.dataset.errorCode;
  }

  mediaNote(words) {
    const note = byId("media-note");
    note.textContent = words;
    note.hidden = !words;
  }

  connectionLost(lost) {
    show("connection-lost", lost);
  }

  /** Messages from the other side not read yet, on the Chat tab. */
  setUnread(count) {
    const badge = byId("chat-unread");
    badge.hidden = !count;
    badge.textContent = count ? `${count} new` : "";
  }
}

/**
 * The room's tabs (Chat, Whiteboard, Call log), as the ARIA tabs pattern has them: one tab
 * in the Tab order, arrows / Home / End move between them. `onShow(tab id)` after each change.
 */
export function bindRoomTabs(onShow) {
  const tabs = [...document.querySelectorAll("#room [role=tab]")];
  const select = (tab, focus) => {
    for (const each of tabs) {
      const on = each === tab;
      each.setAttribute("aria-selected", String(on));
      each.tabIndex = on ? 0 : -1;
      byId(each.getAttribute("aria-controls")).hidden = !on;
    }
    if (focus) tab.focus();
    onShow(tab.id);
  };
  const moves = { ArrowRight: 1, ArrowLeft: -1, Home: "first", End: "last" };
  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => select(tab, false));
    tab.addEventListener("keydown", (event) => {
      const move = moves[event.key];
      if (move === undefined) return;
      event.preventDefault();
      const next = move === "first" ? 0 : move === "last" ? tabs.length - 1 : (index + move + tabs.length) % tabs.length;
      select(tabs[next], true);
    });
  });
}

function countdownSpan(toMs) {
  const span = document.createElement("span");
  span.className = "countdown";
  span.dataset.countdownTo = String(toMs);
  span.textContent = clockText(msUntil(toMs));
  return span;
}
