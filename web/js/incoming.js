// Incoming calls on every page of a logged-in member: a popup with the caller's name,
// Accept / Decline and the time left to answer, a chirp, and a system notification when
// the member allowed them. Accepting turns this page into the call page.

import { el } from "./dom.js";
import { clockText, msUntil } from "./clock.js";
import { Ringer, unlockSoundOnFirstGesture } from "./chirp.js";
import { sentence } from "./forms.js";
import { openCallHere } from "./handoff.js";

// How long the reason a ring stopped stays on screen (a missed call stays until dismissed).
const STOPPED_SHOWN_MS = 6000;
const NOTIFY_DISMISSED_KEY = "interkanect.notifications.dismissed";

export function ringStoppedWords(reason, callerName) {
  return {
    answered: "Answered on another page.",
    declined: "Declined.",
    cancelled: `${callerName} hung up before you answered.`,
    missed: `Missed call from ${callerName}.`,
  }[reason] || `The call from ${callerName} stopped ringing (${reason}).`;
}

export class IncomingCalls {
  /** `page`: {me, live} of this page. */
  constructor(page) {
    const live = page.live;
    this.page = page;
    this.live = live;
    this.calls = new Map();      // call_id → {frame, box, notification}
    this.ringer = new Ringer((played) => this.chirped(played));
    this.tick = null;
    this.container = el("div", { id: "incoming-calls", class: "incoming-calls" });
    document.body.append(this.container);
    this.titleBefore = document.title;
    unlockSoundOnFirstGesture();
    live.on("incoming_call", (frame) => this.ring(frame));
    live.on("ring_stopped", (frame) => this.stopped(frame));
  }

  ring(frame) {
    if (this.calls.has(frame.call_id)) return;
    const box = this.popup(frame);
    const call = { frame, box, notification: this.notify(frame), returnFocus: document.activeElement };
    this.calls.set(frame.call_id, call);
    this.container.append(box);
    this.ringing();
    box.querySelector("[data-action=accept]").focus({ preventScroll: true });
  }

  popup(frame) {
    const name = frame.caller.name || "Someone";
    const titleId = `incoming-title-${frame.call_id}`;
    const textId = `incoming-text-${frame.call_id}`;
    const accept = el("button", { type: "button", class: "button button--accept", dataset: { action: "accept" } },
      "Accept");
    const decline = el("button", { type: "button", class: "button button--danger", dataset: { action: "decline" } },
      "Decline");
    accept.addEventListener("click", () => this.accept(frame.call_id));
    decline.addEventListener("click", () => this.decline(frame.call_id));
    return el("section", {
      class: "incoming-call", role: "alertdialog", "aria-labelledby": titleId, "aria-describedby": textId,
      dataset: { incomingCall: frame.call_id, state: "ringing", chirp: "none" },
    },
    el("div", { class: "incoming-call__pulse", "aria-hidden": "true" }),
    el("div", { class: "incoming-call__body" },
      el("h2", { id: titleId, class: "incoming-call__title" }, "Incoming call"),
      el("p", { id: textId, class: "incoming-call__text" },
        el("strong", { class: "incoming-call__name" }, name), " is calling you."),
      el("p", { class: "incoming-call__countdown" }, "Answer within ",
        el("span", { class: "incoming-call__left", dataset: { deadline: String(frame.deadline_ms) } },
          clockText(msUntil(frame.deadline_ms)))),
      el("p", { class: "incoming-call__error", role: "alert", hidden: true }),
      el("div", { class: "incoming-call__actions" }, accept, decline)));
  }

  // The other pages of the member are told by ring_stopped (answered); this one becomes the call.
  async accept(callId) {
    const call = this.calls.get(callId);
    if (!call || call.box.dataset.state !== "ringing") return;
    this.setBusy(call, "accepting", "Connecting…");
    let accepted;
    try {
      accepted = await this.live.request({ type: "accept", call_id: callId },
        { call_state: (state) => state.call_id === callId });
    } catch (error) {
      this.failed(call, error);
      return;
    }
    this.remove(callId);
    openCallHere(this.page, callId, accepted);
  }

  async decline(callId) {
    const call = this.calls.get(callId);
    if (!call || call.box.dataset.state !== "ringing") return;
    this.setBusy(call, "declining", "Declining…");
    try {
      await this.live.request({ type: "decline", call_id: callId },
        { ring_stopped: (frame) => frame.call_id === callId });
    } catch (error) {
      this.failed(call, error);
      return;
    }
    this.remove(callId);
  }

  setBusy(call, state, words) {
    call.box.dataset.state = state;
    for (const button of call.box.querySelectorAll("button")) button.disabled = true;
    call.box.querySelector(`[data-action=${state === "accepting" ? "accept" : "decline"}]`).textContent = words;
  }

  failed(call, error) {
    const message = call.box.querySelector(".incoming-call__error");
    message.textContent = sentence(error.message);
    message.dataset.errorCode = error.code;
    message.hidden = false;
    call.box.dataset.state = "failed";
    this.dismissible(call);
  }

  stopped(frame) {
    const call = this.calls.get(frame.call_id);
    if (!call) return;
    if (call.box.dataset.state === "accepting" && frame.reason === "answered") return;  // ours: on its way
    call.notification?.close();
    this.calls.delete(frame.call_id);   // no longer ringing: the ring stops with the last one
    this.ringing();
    if (frame.reason === "declined" && call.box.dataset.state === "declining") {
      drop(call);
      return;
    }
    call.box.dataset.state = "stopped";
    call.box.dataset.reason = frame.reason;
    const title = frame.reason === "missed" ? "Missed call" : "Call ended";
    call.box.querySelector(".incoming-call__title").textContent = title;
    call.box.querySelector(".incoming-call__text").textContent = ringStoppedWords(frame.reason, call.frame.caller.name);
    call.box.querySelector(".incoming-call__countdown").hidden = true;
    call.box.querySelector(".incoming-call__actions").replaceChildren();
    this.dismissible(call);
    if (frame.reason !== "missed") setTimeout(() => drop(call), STOPPED_SHOWN_MS);
  }

  dismissible(call) {
    const close = el("button", { type: "button", class: "button", dataset: { action: "dismiss" } }, "Close");
    close.addEventListener("click", () => {
      drop(call);
      this.remove(call.frame.call_id);
    });
    call.box.querySelector(".incoming-call__actions").replaceChildren(close);
    call.box.setAttribute("role", "dialog");
  }

  remove(callId) {
    const call = this.calls.get(callId);
    if (call) {
      call.notification?.close();
      drop(call);
      this.calls.delete(callId);
    }
    this.ringing();
  }

  /** Ring (sound, countdown, title) while any call is ringing here. */
  ringing() {
    const ringing = [...this.calls.values()].some((call) => call.box.dataset.state === "ringing");
    if (ringing) {
      this.ringer.start();
      this.tick ??= setInterval(() => this.countdown(), 250);
      if (!document.title.startsWith("📞")) this.titleBefore = document.title;
      document.title = "📞 Incoming call · interKanect";
    } else {
      this.ringer.stop();
      clearInterval(this.tick);
      this.tick = null;
      if (document.title.startsWith("📞")) document.title = this.titleBefore;
    }
  }

  chirped(played) {
    for (const call of this.calls.values()) {
      if (call.box.dataset.chirp !== "played") call.box.dataset.chirp = played ? "played" : "blocked";
    }
  }

  countdown() {
    for (const left of this.container.querySelectorAll(".incoming-call__left")) {
      left.textContent = clockText(msUntil(Number(left.dataset.deadline)));
    }
  }

  notify(frame) {
    if (!("Notification" in window) || Notification.permission !== "granted") return null;
    try {
      const notification = new Notification("Incoming call on interKanect", {
        body: `${frame.caller.name || "Someone"} is calling you.`, tag: `call-${frame.call_id}`,
        requireInteraction: true,
      });
      notification.onclick = () => {
        window.focus();
        notification.close();
      };
      return notification;
    } catch {
      return null;  // some browsers allow notifications only from a service worker
    }
  }
}

/** Take a popup away, giving the keyboard focus back to where it was before the ring. */
function drop(call) {
  const hadFocus = call.box.contains(document.activeElement);
  call.box.remove();
  if (hadFocus && call.returnFocus?.isConnected) call.returnFocus.focus({ preventScroll: true });
}

/**
 * A polite offer to turn on notifications, so calls reach a member whose tab is in the
 * background; asked only when they click, never on load. "Not now" is remembered.
 */
export function offerNotifications() {
  if (!("Notification" in window) || Notification.permission !== "default") return;
  if (localStorage.getItem(NOTIFY_DISMISSED_KEY)) return;
  const main = document.getElementById("main");
  if (!main) return;
  const enable = el("button", { id: "notify-enable", type: "button", class: "button button--small" },
    "Turn on notifications");
  const later = el("button", { id: "notify-dismiss", type: "button", class: "button button--small button--quiet" },
    "Not now");
  const offer = el("aside", { id: "notify-offer", class: "notify-offer", "aria-label": "Call notifications" },
    el("p", {}, "Get a notification when someone calls you, even while this tab is in the background."),
    el("div", { class: "notify-offer__actions" }, enable, later));
  enable.addEventListener("click", async () => {
    enable.disabled = true;
    await Notification.requestPermission();
    offer.remove();
  });
  later.addEventListener("click", () => {
    localStorage.setItem(NOTIFY_DISMISSED_KEY, "1");
    offer.remove();
  });
  main.prepend(offer);
}
