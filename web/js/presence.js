// Status dots: green online, red in a call, an empty outline offline. Every dot carries
// data-member-id and data-status, and the board keeps all dots of a member in step.

export const STATUS_WORDS = { online: "online", in_call: "in a call", offline: "offline" };

/** A status dot for one member; `size` is "small" or "large". */
export function statusDot(memberId, status = "offline", size = "small") {
  const dot = document.createElement("span");
  dot.className = `status-dot status-dot--${size}`;
  dot.dataset.memberId = memberId;
  dot.setAttribute("role", "img");
  showStatus(dot, status, false);
  return dot;
}

/** `live` is false until the server has told us this status (and again while disconnected). */
function showStatus(dot, status, live) {
  dot.dataset.status = status;
  dot.dataset.live = String(live);
  const words = live ? STATUS_WORDS[status] : `${STATUS_WORDS[status]} (not confirmed)`;
  dot.setAttribute("aria-label", words);
  dot.title = words;
}

/** Visible words for a status, kept in step like the dots (data-status-text-for). */
export function statusText(memberId) {
  const text = document.createElement("span");
  text.className = "status-text";
  text.dataset.statusTextFor = memberId;
  text.textContent = "…";
  return text;
}

export class PresenceBoard {
  constructor(live) {
    this.live = live;
    this.known = new Map();   // member id → {status, live}: the server's last word on it
    this.listeners = new Map();  // member id → Set of fn({status, live})
    live.on("presence", (frame) => this.update(frame.member_id, frame.status));
    live.on("hello", (frame) => this.update(frame.member_id, frame.status));
    live.on("state", (state) => { if (state !== "open") this.markStale(); });
  }

  /** Follow these members' dots (idempotent; re-sent by the connection on reconnect). */
  follow(memberIds) {
    this.live.watch(memberIds);
    memberIds.forEach((id) => this.paint(id));
  }

  unfollow(memberIds) {
    this.live.unwatch(memberIds);
    memberIds.forEach((id) => this.known.delete(id));
  }

  /** Call `listener({status, live})` now and whenever this member's dot changes. */
  onChange(memberId, listener) {
    if (!this.listeners.has(memberId)) this.listeners.set(memberId, new Set());
    this.listeners.get(memberId).add(listener);
    listener(this.known.get(memberId) || { status: "offline", live: false });
  }

  update(memberId, status) {
    this.known.set(memberId, { status, live: true });
    this.paint(memberId);
  }

  paint(memberId) {
    const { status, live } = this.known.get(memberId) || { status: "offline", live: false };
    for (const dot of document.querySelectorAll(`.status-dot[data-member-id="${memberId}"]`)) {
      showStatus(dot, status, live);
    }
    for (const text of document.querySelectorAll(`[data-status-text-for="${memberId}"]`)) {
      text.textContent = this.known.has(memberId) ? capitalised(STATUS_WORDS[status]) : "Checking…";
      text.dataset.status = status;
    }
    for (const listener of this.listeners.get(memberId) || []) listener({ status, live });
  }

  // While disconnected what we show may be out of date: keep it, but say so, until the
  // re-watch after reconnecting brings fresh statuses.
  markStale() {
    for (const [id, entry] of this.known) {
      entry.live = false;
      this.paint(id);
    }
  }
}

function capitalised(words) {
  return words.charAt(0).toUpperCase() + words.slice(1);
}
