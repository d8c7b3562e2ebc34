// The member's live connection (/ws): msgpack frames, request ids, dispatch by frame
// type, and reconnection with backoff. While it is open the member counts as online.

import { encode } from "../vendor/msgpack/encode.mjs";
import { decode } from "../vendor/msgpack/decode.mjs";

// The server closes with this code when the session behind the socket has ended.
export const CLOSE_SESSION_ENDED = 4401;
// The error code a page gets, before `hello`, when its member has too many pages open.
const TOO_MANY_PAGES = "too_many_pages";
// The server refuses a watch frame of more members than this (schemas/client.json).
export const WATCH_BATCH_MAX = 500;
// Reconnect quickly after a blip, but a gateway that stays down must not be hammered.
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;

export function liveUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/ws`;
}

/** Delay before reconnect attempt number `attempt` (0-based): exponential, full jitter. */
export function retryDelayMs(attempt, random = Math.random) {
  const ceiling = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + random() * ceiling / 2);
}

export function batches(items, size = WATCH_BATCH_MAX) {
  const out = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The server refused a frame (its `error` answer), or no answer came in time. */
export class FrameError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export class LiveConnection {
  /**
   * onSessionEnded: called once when the server says the session is over (4401);
   * isLoggedIn: asked after a failed connect, since a refused upgrade hides its 401.
   */
  constructor({ url = liveUrl(), onSessionEnded, isLoggedIn }) {
    this.url = url;
    this.onSessionEnded = onSessionEnded;
    this.isLoggedIn = isLoggedIn;
    this.handlers = new Map();   // frame type → Set of handlers
    this.watched = new Set();    // member ids to follow, re-sent after every reconnect
    this.nextId = 1;
    this.socket = null;
    this.state = "closed";       // closed | connecting | open | ended
    this.attempt = 0;
    this.retryTimer = null;
    this.refusedCode = null;     // the error code the server refused this socket with, before hello
  }

  /** Call `handler(frame)` for every frame of `type`; "state" gets state changes. */
  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(handler);
    return () => this.handlers.get(type).delete(handler);
  }

  emit(type, value) {
    for (const handler of this.handlers.get(type) || []) handler(value);
  }

  setState(state) {
    this.state = state;
    this.emit("state", state);
  }

  start() {
    if (this.socket || this.state === "ended") return;
    this.setState("connecting");
    const socket = new WebSocket(this.url);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = (event) => this.closed(socket, event);
    this.socket = socket;
  }

  /** Close for good (logging out, leaving the page). */
  stop() {
    this.setState("ended");
    clearTimeout(this.retryTimer);
    if (this.socket) this.socket.close(1000, "bye");
    this.socket = null;
  }

  /** Send a frame now, with a fresh request id; returns the id, or null when not open. */
  send(frame) {
    if (this.state !== "open") return null;
    const id = this.nextId++;
    this.socket.send(encode({ ...frame, id }));
    return id;
  }

  /**
   * Send `frame` and wait for its answer: resolves with the first frame for which
   * `answers[type](frame)` is true; rejects with a FrameError for an `error` about this frame
   * or when nothing came within `timeoutMs`.
   */
  request(frame, answers, timeoutMs = 10_000) {
    const id = this.send(frame);
    if (id === null) {
      return Promise.reject(new FrameError("not_connected", "you are not connected right now; try again in a moment"));
    }
    return new Promise((resolve, reject) => {
      const offs = [];
      const finish = (settle, value) => {
        clearTimeout(timer);
        offs.forEach((off) => off());
        settle(value);
      };
      const timer = setTimeout(() => finish(reject, new FrameError("timeout", "interKanect did not answer; try again")),
        timeoutMs);
      offs.push(this.on("error", (error) => {
        if (error.id === id) finish(reject, new FrameError(error.code, error.message));
      }));
      for (const [type, accepts] of Object.entries(answers)) {
        offs.push(this.on(type, (answer) => { if (accepts(answer)) finish(resolve, answer); }));
      }
    });
  }

  watch(memberIds) {
    const fresh = memberIds.filter((id) => !this.watched.has(id));
    fresh.forEach((id) => this.watched.add(id));
    this.sendBatched("watch", fresh);
  }

  unwatch(memberIds) {
    const known = memberIds.filter((id) => this.watched.delete(id));
    this.sendBatched("unwatch", known);
  }

  sendBatched(type, memberIds) {
    for (const members of batches(memberIds)) this.send({ type, members });
  }

  /** Resolves with the round trip in milliseconds, through the member's shard. */
  ping(timeoutMs = 10_000) {
    const started = performance.now();
    const id = this.send({ type: "ping" });
    if (id === null) return Promise.reject(new Error("the live connection is not open"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { off(); reject(new Error("no pong in time")); }, timeoutMs);
      const off = this.on("pong", (frame) => {
        if (frame.id !== id) return;
        clearTimeout(timer);
        off();
        resolve(performance.now() - started);
      });
    });
  }

  receive(data) {
    let frame;
    try {
      frame = decode(new Uint8Array(data));
    } catch (error) {
      console.warn("interKanect: an unreadable frame from the server", error);
      return;
    }
    if (frame.type === "hello") this.opened();
    if (frame.type === "error") console.warn(`interKanect: frame ${frame.id} refused: ${frame.code}: ${frame.message}`);
    if (frame.type === "error" && frame.id === null && this.state === "connecting") this.refusedCode = frame.code;
    this.emit(frame.type, frame);
  }

  // The socket counts as open at `hello`: only then is the member attached server-side.
  opened() {
    this.attempt = 0;
    this.setState("open");
    this.sendBatched("watch", [...this.watched]);
  }

  closed(socket, event) {
    if (socket !== this.socket) return;  // an old socket, already replaced or stopped
    const wasOpen = this.state === "open";
    this.socket = null;
    if (event.code === CLOSE_SESSION_ENDED) {
      this.setState("ended");
      this.onSessionEnded();
      return;
    }
    const refused = this.refusedCode;
    this.refusedCode = null;
    // Refused for having too many pages: say so, and try again later (another page may close).
    this.setState(refused === TOO_MANY_PAGES ? TOO_MANY_PAGES : "closed");
    if (wasOpen) this.retry(); else this.retryIfLoggedIn();
  }

  async retryIfLoggedIn() {
    try {
      if (!(await this.isLoggedIn())) {
        this.setState("ended");
        this.onSessionEnded();
        return;
      }
    } catch {
      // The gateway is unreachable: keep retrying, it may come back.
    }
    this.retry();
  }

  retry() {
    if (this.state === "ended") return;
    const delay = retryDelayMs(this.attempt++);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.start(), delay);
  }

  /** Try now rather than at the end of the backoff (the network came back). */
  retryNow() {
    if (this.state !== "closed" && this.state !== TOO_MANY_PAGES) return;
    clearTimeout(this.retryTimer);
    this.start();
  }
}
