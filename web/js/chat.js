// Text chat over the call's `chat` data channel (peer to peer: the server never sees a word).
// A message written while the channel is down waits in this page and goes as soon as a
// connection is back (after a payment, a dropped link, the other side's refresh); each side
// acknowledges what it got, so this page knows what was delivered and sends again only what
// was not (the receiver ignores a message it already has). The conversation is kept in this
// tab's sessionStorage, so a refresh keeps it; nothing leaves the two browsers.

import { el } from "./dom.js";

export const MAX_CHARS = 1000;
const KEEP_MESSAGES = 500;               // kept in the tab (and drawn) per call
const STORE_KEY = "interkanect.chat.";   // + call id
const STATUS_WORDS = { queued: "Waiting to send", sent: "Sent", delivered: "Delivered", failed: "Not sent" };

function newId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(9)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function timeText(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export class Chat {
  /** `onUnread(n)`: messages from the other side not seen yet (the Chat tab shows it). */
  constructor(callId, { onUnread = () => {} } = {}) {
    this.callId = callId;
    this.onUnread = onUnread;
    this.channel = null;
    this.names = { mine: "You", theirs: "The other side" };
    this.messages = this.load();
    this.ended = false;
    this.visible = true;
    this.unread = 0;
    this.list = document.getElementById("chat-log");
    this.input = document.getElementById("chat-input");
    this.note = document.getElementById("chat-note");
    this.panel = document.getElementById("chat-panel");
  }

  bind() {
    document.getElementById("chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.send(this.input.value);
    });
    this.input.addEventListener("input", () => this.sayLength());
    this.redraw();
    this.sayState();
  }

  /** The names to show, from the call_state. */
  setNames(mine, theirs) {
    this.names = { mine, theirs };
    this.redraw();
  }

  /** The chat channel of a new connection, or null when the connection is gone. */
  attach(channel) {
    this.channel = channel;
    if (channel) {
      channel.onopen = () => { if (channel === this.channel) this.opened(); };
      channel.onclose = () => { if (channel === this.channel) this.sayState(); };
      channel.onmessage = (event) => { if (channel === this.channel) this.received(event.data); };
      if (channel.readyState === "open") this.opened();
    }
    this.sayState();
  }

  get open() {
    return this.channel?.readyState === "open";
  }

  opened() {
    this.sayState();
    // Everything of ours the other side has not acknowledged goes (again), in order.
    for (const message of this.messages) {
      if (message.mine && ["queued", "sent"].includes(message.status)) this.transmit(message);
    }
  }

  send(raw) {
    const text = raw.trim();
    if (!text || this.ended) return;
    if (text.length > MAX_CHARS) {
      this.say(`A message can be at most ${MAX_CHARS} characters.`);
      return;
    }
    const message = { id: newId(), mine: true, text, at_ms: Date.now(), status: "queued" };
    this.messages.push(message);
    this.input.value = "";
    this.sayLength();
    if (this.open) this.transmit(message);
    this.save();
    this.append(message);
    this.sayState();
  }

  transmit(message) {
    try {
      this.channel.send(JSON.stringify({ t: "msg", id: message.id, text: message.text }));
      this.setStatus(message, "sent");
    } catch (error) {
      console.warn(`interKanect: a chat message waits for the connection: ${error.message}`);
    }
  }

  received(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame.t === "ack") {
      const message = this.messages.find((m) => m.mine && m.id === frame.id);
      if (message) this.setStatus(message, "delivered");
      return;
    }
    if (frame.t !== "msg" || typeof frame.id !== "string" || typeof frame.text !== "string") return;
    this.channel.send(JSON.stringify({ t: "ack", id: frame.id }));
    if (this.messages.some((m) => !m.mine && m.id === frame.id)) return;   // a resend we already have
    const message = { id: frame.id.slice(0, 64), mine: false, text: frame.text.slice(0, MAX_CHARS), at_ms: Date.now() };
    this.messages.push(message);
    this.save();
    this.append(message);
    if (!this.visible || document.hidden) {
      this.unread += 1;
      this.onUnread(this.unread);
    }
  }

  /** The Chat tab shows (or not): what is on screen counts as read. */
  setVisible(visible) {
    this.visible = visible;
    if (visible && this.unread) {
      this.unread = 0;
      this.onUnread(0);
    }
  }

  /** The call is over: whatever still waits will never go. */
  end() {
    this.ended = true;
    for (const message of this.messages) if (message.mine && message.status === "queued") this.setStatus(message, "failed");
    this.input.disabled = true;
    document.getElementById("chat-send").disabled = true;
    this.sayState();
  }

  setStatus(message, status) {
    if (message.status === "delivered") return;
    message.status = status;
    this.save();
    const item = this.list.querySelector(`[data-message-id="${CSS.escape(message.id)}"]`);
    if (item) {
      item.dataset.status = status;
      item.querySelector(".chat__status").textContent = STATUS_WORDS[status];
    }
  }

  // Drawing: text nodes only (dom.js), never HTML from the other side.

  redraw() {
    this.list.replaceChildren(...this.messages.map((message) => this.item(message)));
    this.showEmpty();
  }

  append(message) {
    this.list.append(this.item(message));
    this.showEmpty();
    this.list.scrollTop = this.list.scrollHeight;
  }

  item(message) {
    const name = message.mine ? this.names.mine : this.names.theirs;
    return el("li", { class: `chat__message chat__message--${message.mine ? "mine" : "theirs"}`,
      dataset: { messageId: message.id, from: message.mine ? "me" : "them", status: message.status || "received" } },
    el("p", { class: "chat__meta" }, el("span", { class: "chat__name" }, name), " ",
      el("time", { class: "chat__time", datetime: new Date(message.at_ms).toISOString() }, timeText(message.at_ms)),
      message.mine ? el("span", { class: "chat__status" }, STATUS_WORDS[message.status]) : null),
    el("p", { class: "chat__text" }, message.text));
  }

  showEmpty() {
    document.getElementById("chat-empty").hidden = this.messages.length > 0;
  }

  sayState() {
    this.panel.dataset.channel = this.open ? "open" : "closed";
    const waiting = this.messages.filter((m) => m.mine && m.status === "queued").length;
    if (this.ended) this.say(waiting ? "The call has ended; messages that were waiting were not sent." : "The call has ended.");
    else if (this.open) this.say("");
    else this.say(waiting ? `Not connected right now: ${waiting === 1 ? "your message goes" : `${waiting} messages go`} as soon as you are reconnected.`
      : "Not connected right now: what you write goes as soon as you are reconnected.");
  }

  sayLength() {
    const left = MAX_CHARS - this.input.value.length;
    if (left < 100) this.say(`${left} characters left.`);
    else this.sayState();
  }

  say(words) {
    if (this.note.textContent !== words) this.note.textContent = words;
  }

  // The tab's own copy of the conversation (sessionStorage: this tab only, gone when it closes).

  load() {
    try {
      const stored = JSON.parse(sessionStorage.getItem(STORE_KEY + this.callId) || "[]");
      return Array.isArray(stored) ? stored : [];
    } catch {
      return [];
    }
  }

  save() {
    try {
      sessionStorage.setItem(STORE_KEY + this.callId, JSON.stringify(this.messages.slice(-KEEP_MESSAGES)));
    } catch (error) {
      console.warn(`interKanect: the chat is not kept over a refresh: ${error.message}`);
    }
  }
}
