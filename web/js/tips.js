// Tips during a call. The caller tips an upgraded host who can be paid (one with a payout
// email): the amount dialog sends a `tip` frame, the server makes a PayPal order for it
// (event "tip_ready", `call_state.tips` then holds its approval link), and the caller approves
// it on PayPal exactly like the call's payment (js/paypal.js: a popup, or this tab when the
// browser blocks popups). A tip never suspends the call: media, countdowns and panels go on.
// The host sees a tip once it is captured (event "tip_received"): a toast, and the total.

import * as api from "./api.js";
import { followFees, hostReceivesWords } from "./feepreview.js";
import { FormError, clearErrors, handleForm } from "./forms.js";
import { FrameError } from "./live.js";
import { PayPalApproval, orderOfApproveUrl, pendingArrival } from "./paypal.js";
import { centsFromDollars, priceText } from "./terms.js";
import { toast } from "./toasts.js";

// A tip's bounds come with every call_state (`limits.tip_min_cents` / `tip_max_cents`, the
// server's policy): the dialog says the minimum and refuses an amount outside them before
// asking PayPal for anything. The server checks again and its refusal has the last word.
// States in which the caller can tip.
const TIP_STATES = new Set(["negotiating", "running", "extension_offered"]);
const SEND_TIMEOUT_MS = 30_000;   // PayPal making the order can take a few retries
// Steps of the dialog after "choose" (the amount form): the tip's, then its PayPal approval's.
const PAYPAL_BUTTON = { ready: "pay", blocked: "pay", unconfirmed: "pay", cancelled: "pay", open: "show" };
// Another amount only once the tip followed is over: the server takes one tip awaiting approval
// at a time (tip_pending) until it is approved, fails or lapses after the payment window.
const ANOTHER_AMOUNT = new Set(["failed", "expired"]);

function byId(id) {
  return document.getElementById(id);
}

function setText(node, words) {
  if (node.textContent !== words) node.textContent = words;   // a live region speaks changes only
}

/** What the dialog says at `step` about a tip of `amount` to `host`: [heading, status, hint]. */
function stepWords(step, amount, host, problem) {
  switch (step) {
    case "preparing": return [`Your ${amount} tip`, "Preparing the PayPal payment…", null];
    case "ready": return [`Your ${amount} tip`, `Approve your ${amount} tip to ${host} with PayPal.`,
      "PayPal opens in a new window. The call goes on meanwhile."];
    case "open": return [`Your ${amount} tip`, "Finish the tip in the PayPal window.", "The call goes on meanwhile."];
    case "blocked": return [`Your ${amount} tip`, "Your browser blocked the PayPal window.",
      "Allow pop-ups for this site and try again, or approve the tip in this tab: your video stops "
        + "until PayPal brings you back to the call."];
    case "approved": return [`Your ${amount} tip`, "You approved the tip on PayPal. Confirming it…", null];
    case "unconfirmed": return [`Your ${amount} tip`,
      "PayPal has not confirmed the tip yet. If you did not finish approving it, approve it again.", null];
    case "cancelled": return [`Your ${amount} tip`, "You cancelled on PayPal; nothing was paid.", null];
    case "sent": return ["Tip sent — thank you", `${host} receives your ${amount} tip.`, null];
    case "failed": return ["The tip did not go through", "PayPal did not take the payment; nothing was charged.", null];
    case "expired": return ["The tip lapsed", `Your ${amount} tip was not approved in time; nothing was paid.`, null];
    case "unavailable": return ["No tips", problem || `${host} cannot receive tips.`, null];
    default: return [`Tip ${host}`, "", null];
  }
}

export class Tips {
  constructor({ live }, callId) {
    this.live = live;
    this.callId = callId;
    this.state = null;
    this.canTip = undefined;   // the host can be paid (their public profile); undefined until known
    this.number = null;        // the caller's tip the dialog follows (tips are numbered from 1)
    this.waitingAfter = null;  // a tip was asked for when the caller had this many
    this.step = "choose";
    this.problem = null;       // the server's words when tips are not possible
    this.seen = null;          // tips already told of (host: captured; caller: captured or failed)
    this.approval = new PayPalApproval(callId, "tip", () => this.render());
  }

  bind() {
    this.dialog = byId("tip-dialog");
    this.form = byId("tip-form");
    byId("tip-button").addEventListener("click", () => this.openDialog());
    byId("tip-dismiss").addEventListener("click", () => this.dialog.close());
    byId("tip-close").addEventListener("click", () => this.dialog.close());
    // The focus goes back to the Tip button; when that is gone (no tips), to the call's panel.
    this.dialog.addEventListener("close", () => {
      if (byId("tip-button").hidden) byId("call-panel").focus();
    });
    byId("tip-again").addEventListener("click", () => this.choose());
    byId("tip-paypal-button").addEventListener("click", () => this.openPayPal());
    byId("tip-here-button").addEventListener("click", () => {
      const tip = this.tip();
      if (tip?.approve_url) this.approval.openHere(tip.approve_url);
    });
    // What the host receives of the amount chosen, by the server's fee rule.
    this.sayNet = followFees(byId("tip-amount"), byId("tip-net"),
      (split) => hostReceivesWords(this.state?.host?.name || "The host")(split), () => this.amountText());
    // Typing an amount chooses "Other"; the Send button says what it sends.
    byId("tip-amount").addEventListener("input", () => {
      this.form.querySelector("input[name=tip-preset][value=other]").checked = true;
      this.sayAmount();
    });
    this.form.addEventListener("change", () => {
      this.sayAmount();
      this.sayNet();
    });
    handleForm(this.form, (values) => this.send(values));
  }

  tick() {
    this.approval.tick();
  }

  // The call's state --------------------------------------------------------------------

  onState(state) {
    const first = this.state === null;
    this.state = state;
    setText(byId("tip-minimum"), `The smallest tip is ${priceText(state.limits.tip_min_cents)}.`);
    if (state.role === "host") {
      this.tellHost(state, first);
    } else {
      if (first) this.resume(state);
      this.follow(state);
      this.tellCaller(state, first);
    }
    this.renderTotal(state);
    this.renderButton(state);
    if (!TIP_STATES.has(state.state) && this.dialog.open) this.dialog.close();
    if (state.state === "ended") this.approval.forget();   // a popup still open is the payer's to finish
    this.render();
  }

  // A fresh page (a refresh, or back from PayPal in this tab): the caller's tip to follow.
  resume(state) {
    const came = pendingArrival("tip");
    const number = Number(/^tip-(\d+)$/.exec(came?.key || "")?.[1]);
    if (number && state.tips[number - 1]) {
      this.number = number;
      this.showDialog();   // back from approving (or cancelling) it on PayPal: say how it went
      return;
    }
    const pending = state.tips.filter((tip) => tip.state === "requested" || tip.state === "awaiting_approval");
    if (pending.length) this.number = pending[pending.length - 1].tip;
    this.step = this.number ? "preparing" : "choose";
  }

  follow(state) {
    if (this.waitingAfter !== null && state.tips.length > this.waitingAfter) {
      this.number = this.waitingAfter + 1;
      this.waitingAfter = null;
    }
    const tip = this.tip();
    if (!tip) return;
    switch (tip.state) {
      case "requested":
        this.step = "preparing";
        break;
      case "awaiting_approval": {
        const before = this.step;
        this.approval.follow(`tip-${tip.tip}`, orderOfApproveUrl(tip.approve_url));
        this.step = this.approval.step;
        if (before === "preparing" && this.step === "ready") this.focusSoon("tip-paypal-button");
        break;
      }
      case "captured":
      case "failed":
      case "expired":
        if (this.approval.key === `tip-${tip.tip}`) this.approval.release();
        this.step = tip.state === "captured" ? "sent" : tip.state;
        break;
      default:
        break;
    }
  }

  // The caller hears how each tip ended: in the dialog when it is open, else in a toast.
  tellCaller(state, first) {
    const done = state.tips.filter((tip) => tip.state === "captured" || tip.state === "failed");
    if (first) {
      this.seen = new Set(done.filter((tip) => tip.tip !== this.number).map((tip) => tip.tip));
    }
    for (const tip of done) {
      if (this.seen.has(tip.tip)) continue;
      this.seen.add(tip.tip);
      const shownInDialog = this.dialog.open && tip.tip === this.number;
      if (shownInDialog) {
        this.focusSoon("tip-close");
      } else if (tip.state === "captured") {
        toast("Tip sent — thank you", { kind: "tip", dataset: { toast: "tip-sent", tip: String(tip.tip) } });
      } else {
        toast(`Your ${priceText(tip.amount_cents)} tip did not go through; nothing was charged.`,
          { kind: "error", dataset: { toast: "tip-failed", tip: String(tip.tip) } });
      }
    }
  }

  // The host sees each tip once it is paid; tips paid before this page opened are not news.
  tellHost(state, first) {
    const captured = state.tips.filter((tip) => tip.state === "captured");
    if (first) {
      this.seen = new Set(captured.map((tip) => tip.tip));
      return;
    }
    for (const tip of captured) {
      if (this.seen.has(tip.tip)) continue;
      this.seen.add(tip.tip);
      toast(`${state.caller.name} tipped you ${priceText(tip.amount_cents)}`,
        { kind: "tip", dataset: { toast: "tip-received", tip: String(tip.tip) } });
    }
  }

  tip() {
    return this.number ? this.state?.tips[this.number - 1] || null : null;
  }

  // The amount dialog ------------------------------------------------------------------

  openDialog() {
    if (!this.dialog.open) this.showDialog();
    const tip = this.tip();
    const pending = tip && (tip.state === "requested" || tip.state === "awaiting_approval");
    if (!pending && this.waitingAfter === null && this.step !== "unavailable") {
      this.choose();
      return;
    }
    this.render();
    this.focusStep();
  }

  showDialog() {
    this.dialog.showModal();
  }

  /** A new tip: the amount form, fresh. */
  choose() {
    this.step = "choose";
    this.number = null;
    this.form.reset();
    clearErrors(this.form);
    this.sayAmount();
    this.sayNet();   // the $5 preset's share, from the start
    this.render();
    this.form.querySelector("input[name=tip-preset]:checked").focus();
  }

  /** The dollars the form asks for, as typed or preset ("" while Other is empty). */
  amountText() {
    const values = Object.fromEntries(new FormData(this.form));
    return values["tip-preset"] && values["tip-preset"] !== "other" ? values["tip-preset"] : values["tip-amount"] || "";
  }

  /** The cents the form asks for. */
  amountOf(values) {
    if (values["tip-preset"] && values["tip-preset"] !== "other") return Number(values["tip-preset"]) * 100;
    if (!values["tip-amount"]) {
      throw new FormError("tip_format", "enter the tip in dollars, like 5 or 7.50", "tip-amount");
    }
    try {
      return centsFromDollars(values["tip-amount"]);
    } catch {
      throw new FormError("tip_format", "enter the tip in dollars, like 5 or 7.50", "tip-amount");
    }
  }

  sayAmount() {
    let words = "Send the tip";
    try {
      const values = Object.fromEntries(new FormData(this.form));
      const cents = this.amountOf(values);
      if (cents > 0) words = `Send a ${priceText(cents)} tip`;
    } catch { /* not an amount yet */ }
    setText(byId("tip-send"), words);
  }

  /** The server's bounds, checked here so that a doomed tip does not wait for an answer. */
  checkBounds(cents, values) {
    const { tip_min_cents: min, tip_max_cents: max } = this.state.limits;
    if (cents >= min && cents <= max) return;
    throw new FormError("tip_out_of_range", `a tip is between ${priceText(min)} and ${priceText(max)}`,
      values["tip-preset"] === "other" ? "tip-amount" : null);
  }

  async send(values) {
    const cents = this.amountOf(values);
    this.checkBounds(cents, values);
    const state = this.state;
    const before = state.tips.length;
    this.waitingAfter = before;
    this.number = null;
    this.amountCents = cents;
    this.step = "preparing";
    this.render();
    this.focusSoon("tip-close");
    try {
      await this.live.request({ type: "tip", call_id: this.callId, amount_cents: cents },
        { call_state: (answer) => answer.call_id === this.callId && answer.tips.length > before }, SEND_TIMEOUT_MS);
    } catch (refused) {
      if (!(refused instanceof FrameError)) throw refused;
      if (this.waitingAfter === null) return;   // the tip came after all
      if (refused.code === "timeout") {
        // The tip may still come (this page follows it when it does); nothing was charged.
        this.step = "choose";
        this.render();
        throw new FormError(refused.code, "PayPal is slow to answer; if no approval is offered soon, try again");
      }
      this.waitingAfter = null;
      if (refused.code === "no_tips") {
        this.canTip = false;
        this.problem = refused.message;
        this.step = "unavailable";
        this.renderButton(this.state);
        this.render();
        this.focusSoon("tip-close");
        return;
      }
      this.step = "choose";
      this.render();
      const aboutAmount = refused.code === "tip_out_of_range" && values["tip-preset"] === "other";
      throw new FormError(refused.code, refused.message, aboutAmount ? "tip-amount" : null);
    }
  }

  // The PayPal button: from the click, so that browsers allow the popup. A blocked popup does
  // not take this tab to PayPal by itself: that would stop the call's video on this side.
  openPayPal() {
    const tip = this.tip();
    if (tip?.state === "awaiting_approval" && tip.approve_url) this.approval.open(tip.approve_url, { leave: false });
    this.step = this.approval.step;
    this.render();
    if (this.step === "blocked") this.focusSoon("tip-here-button");
  }

  // Drawing ----------------------------------------------------------------------------

  renderButton(state) {
    const button = byId("tip-button");
    const shown = state.role === "caller" && TIP_STATES.has(state.state) && this.canTip === true;
    button.hidden = !shown;
    if (state.role === "caller" && this.canTip === undefined) this.learnCanTip(state.host.id);
  }

  // Whether the host can be paid: their public profile says (an upgraded host with a payout email).
  async learnCanTip(hostId) {
    if (this.asking) return;
    this.asking = true;
    try {
      this.canTip = Boolean((await api.get(`/api/members/${hostId}`)).member.can_charge);
    } catch (error) {
      console.warn("interKanect: could not learn whether the host takes tips", error);
      this.canTip = true;   // the server refuses a tip a host cannot take (no_tips)
    }
    if (this.state) this.renderButton(this.state);
  }

  renderTotal(state) {
    const total = state.tips.filter((tip) => tip.state === "captured").reduce((sum, tip) => sum + tip.amount_cents, 0);
    const line = byId("tips-total");
    line.hidden = total === 0;
    if (total) {
      setText(line, state.role === "host" ? `${state.caller.name} tipped you ${priceText(total)} in this call.`
        : `You tipped ${state.host.name} ${priceText(total)} in this call. Thank you!`);
    }
  }

  render() {
    if (!this.dialog) return;
    if (this.approval.key !== null && this.number && this.approval.key === `tip-${this.number}`
      && this.tip()?.state === "awaiting_approval") {
      this.step = this.approval.step;
    }
    const step = this.step;
    const tip = this.tip();
    const amount = priceText(tip ? tip.amount_cents : this.amountCents || 0);
    const host = this.state?.host.name || "the host";
    const [heading, status, hint] = stepWords(step, amount, host, this.problem);
    this.dialog.dataset.step = step;
    setText(byId("tip-heading"), heading);
    this.form.hidden = step !== "choose";
    byId("tip-progress").hidden = step === "choose";
    setText(byId("tip-status"), status);
    const paypal = byId("tip-paypal-button");
    paypal.hidden = !PAYPAL_BUTTON[step];
    setText(paypal, PAYPAL_BUTTON[step] === "show" ? "Show the PayPal window" : `Tip ${amount} with PayPal`);
    byId("tip-here-button").hidden = step !== "blocked";
    const hintLine = byId("tip-hint");
    hintLine.hidden = !hint;
    if (hint) setText(hintLine, hint);
    const again = byId("tip-again");
    again.hidden = !ANOTHER_AMOUNT.has(step);
    setText(again, step === "failed" ? "Try again" : "Choose another amount");
    setText(byId("tip-close"), step === "sent" ? "Done" : "Close");
    if (this.dialog.open && this.lostFocus()) this.focusStep();
  }

  // The focus was on something the last step hid: put it on what this step is for.
  lostFocus() {
    const active = document.activeElement;
    return !active || active === document.body || active === this.dialog || active.closest("[hidden]") !== null;
  }

  focusStep() {
    if (this.step === "choose") {
      this.form.querySelector("input[name=tip-preset]:checked")?.focus();
      return;
    }
    const paypal = byId("tip-paypal-button");
    (paypal.hidden ? byId("tip-close") : paypal).focus();
  }

  // After this state is drawn (the element may just be shown).
  focusSoon(id) {
    queueMicrotask(() => {
      const node = byId(id);
      if (this.dialog.open && !node.hidden) node.focus();
    });
  }
}
