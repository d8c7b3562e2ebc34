// The whiteboard on screen: the toolbar, pointer drawing on the canvas, drawing the board's
// operations (js/board.js) at whatever size the canvas has, and the `whiteboard` data channel.
// On every channel open each side sends its whole board (in pieces that fit a message); boards
// merge by union, so a page that reconnected or refreshed gets the current board back. Drawing
// while the channel is down is kept and goes with that snapshot.

import { Board, MAX_POINTS, norm } from "./board.js";

const ASPECT = 4 / 3;                   // every board is 4:3, so normalised shapes look the same everywhere
const SNAPSHOT_PIECE_CHARS = 60_000;    // a data channel message stays well below Chromium's 256 KiB
const STORE_KEY = "interkanect.board."; // + call id: this tab's copy, for a refresh of both sides
const TEXT_SIZE = 0.035;                // text height, as a share of the board's width
const MIN_STEP = 0.002;                 // pointer moves shorter than this add no point to a stroke
// The keyboard cursor's step, as a share of the board: arrows, Shift+arrows, Alt+arrows.
const KEY_STEP = 0.02;
const KEY_STEP_BIG = 0.1;
const KEY_STEP_FINE = 0.005;
const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

export class Whiteboard {
  constructor(callId, author) {
    this.callId = callId;
    this.board = new Board(author);
    this.channel = null;
    this.tool = "pen";
    this.color = "#1b1f33";
    this.width = 0.005;
    this.draft = null;                 // the shape being drawn: an op without id or clock
    this.cursor = [0.5, 0.5];          // where the keyboard draws; shown while the board has focus
    this.keyboard = false;             // the draft is the keyboard's (arrows extend it)
    this.canvas = document.getElementById("board-canvas");
    this.context = this.canvas.getContext("2d");
    this.panel = document.getElementById("board-panel");
    this.note = document.getElementById("board-note");
    this.board.merge(this.load());
  }

  bind() {
    const toolbar = document.getElementById("board-toolbar");
    toolbar.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (!button) return;
      if (button.dataset.tool) this.choose("tool", button);
      else if (button.dataset.color) this.choose("color", button);
      else if (button.dataset.width) this.choose("width", button);
    });
    document.getElementById("board-undo").addEventListener("click", () => this.undo());
    document.getElementById("board-redo").addEventListener("click", () => this.redo());
    document.getElementById("board-clear").addEventListener("click", () => this.add("clear"));
    document.getElementById("board-export").addEventListener("click", () => this.exportPng());
    const help = document.getElementById("board-help-button");
    help.addEventListener("click", () => {
      const open = help.getAttribute("aria-expanded") !== "true";
      help.setAttribute("aria-expanded", String(open));
      document.getElementById("board-help").hidden = !open;
    });
    // On the document: the Undo button just pressed may be disabled now, which drops the focus.
    document.addEventListener("keydown", (event) => this.shortcut(event));
    const canvas = this.canvas;
    canvas.addEventListener("pointerdown", (event) => this.down(event));
    canvas.addEventListener("pointermove", (event) => this.move(event));
    canvas.addEventListener("pointerup", (event) => this.up(event));
    canvas.addEventListener("pointercancel", () => { this.draft = null; this.draw(); });
    // The board by keyboard: a cursor moved with the arrows, Enter to start and end a stroke or
    // shape (or to place the text), Escape to drop it; each step said to screen readers.
    canvas.addEventListener("keydown", (event) => this.key(event));
    canvas.addEventListener("focus", () => {
      this.draw();
      this.say("Keyboard drawing: arrows move the cursor (Shift: further, Alt: finer), Enter starts and ends "
        + `a ${this.toolName()}, Escape drops it. ${this.where()}`);
    });
    canvas.addEventListener("blur", () => this.draw());
    new ResizeObserver(() => this.resize()).observe(canvas.parentElement);
    this.resize();
    this.sayState();
  }

  choose(kind, button) {
    const group = button.parentElement;
    group.querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
    if (kind === "tool") {
      this.tool = button.dataset.tool;
      this.canvas.dataset.tool = this.tool;
      document.getElementById("board-text-field").hidden = this.tool !== "text";
      if (this.tool === "text") document.getElementById("board-text").focus();
    } else if (kind === "color") {
      this.color = button.dataset.color;
    } else {
      this.width = Number(button.dataset.width);
    }
  }

  shortcut(event) {
    if (!(event.ctrlKey || event.metaKey) || this.panel.hidden || event.target.matches("input, textarea")) return;
    const key = event.key.toLowerCase();
    if (key === "z" && !event.shiftKey) this.undo();
    else if (key === "y" || (key === "z" && event.shiftKey)) this.redo();
    else return;
    event.preventDefault();
  }

  // The channel --------------------------------------------------------------------------

  /** The whiteboard channel of a new connection, or null when the connection is gone. */
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
    const { ops, flags } = this.board.snapshot();
    let piece = [];
    let size = 0;
    const flush = (last) => {
      this.transmit({ t: "sync", ops: piece, flags: last ? flags : [] });
      piece = [];
      size = 0;
    };
    for (const op of ops) {
      const chars = JSON.stringify(op).length;
      if (size + chars > SNAPSHOT_PIECE_CHARS && piece.length) flush(false);
      piece.push(op);
      size += chars;
    }
    flush(true);
  }

  transmit(frame) {
    if (!this.open) return;   // the next open sends the whole board anyway
    try {
      this.channel.send(JSON.stringify(frame));
    } catch (error) {
      console.warn(`interKanect: a whiteboard change waits for the next connection: ${error.message}`);
    }
  }

  received(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    let changed = false;
    if (frame.t === "op") changed = this.board.apply(frame.op);
    else if (frame.t === "flag") changed = this.board.applyFlag(frame.flag);
    else if (frame.t === "sync") changed = this.board.merge({ ops: frame.ops || [], flags: frame.flags || [] });
    if (changed) this.changed();
  }

  // Changes made here ----------------------------------------------------------------------

  add(kind, fields) {
    const op = this.board.make(kind, fields);
    if (!op) return;
    this.transmit({ t: "op", op });
    this.changed();
  }

  undo() {
    const flag = this.board.undo();
    if (flag) this.transmit({ t: "flag", flag });
    this.changed();
  }

  redo() {
    const flag = this.board.redo();
    if (flag) this.transmit({ t: "flag", flag });
    this.changed();
  }

  changed() {
    this.draw();
    this.save();
    document.getElementById("board-undo").disabled = !this.board.canUndo();
    document.getElementById("board-redo").disabled = !this.board.canRedo();
  }

  // Pointer drawing ---------------------------------------------------------------------------

  at(event) {
    const box = this.canvas.getBoundingClientRect();
    return [norm((event.clientX - box.left) / box.width), norm((event.clientY - box.top) / box.height)];
  }

  down(event) {
    if (event.button !== 0) return;
    const point = this.at(event);
    if (this.tool === "text") {
      this.placeText(point);
      return;
    }
    this.canvas.setPointerCapture(event.pointerId);
    if (this.tool === "pen" || this.tool === "eraser") {
      this.draft = { kind: this.tool, width: this.width, points: [...point, ...point],
        ...(this.tool === "pen" ? { color: this.color } : {}) };
    } else {
      this.draft = { kind: this.tool, color: this.color, width: this.width, from: point, to: point };
    }
    this.draw();
  }

  move(event) {
    const draft = this.draft;
    if (!draft) return;
    const point = this.at(event);
    if (draft.points) {
      const n = draft.points.length;
      const far = Math.hypot(point[0] - draft.points[n - 2], point[1] - draft.points[n - 1]) >= MIN_STEP;
      if (far && n < MAX_POINTS * 2) draft.points.push(...point);
    } else {
      draft.to = point;
    }
    this.draw();
  }

  up(event) {
    const draft = this.draft;
    if (!draft) return;
    this.move(event);
    this.draft = null;
    const { kind, ...fields } = draft;
    this.add(kind, fields);
  }

  placeText(point) {
    const input = document.getElementById("board-text");
    const text = input.value.trim();
    if (!text) {
      this.say("Type the text first, then click the board where it goes.");
      input.focus();
      return;
    }
    this.add("text", { color: this.color, size: TEXT_SIZE, at: point, text });
    input.value = "";
    this.sayState();
  }

  // The keyboard ---------------------------------------------------------------------------

  toolName() {
    return { pen: "stroke", eraser: "rub-out", line: "line", rect: "rectangle", ellipse: "ellipse",
      text: "text" }[this.tool] || this.tool;
  }

  where() {
    const [x, y] = this.cursor.map((v) => Math.round(v * 100));
    return `Cursor ${x}% across, ${y}% down.`;
  }

  key(event) {
    if (event.ctrlKey || event.metaKey) return;   // undo and redo are the document's
    const arrow = ARROWS[event.key];
    if (arrow) {
      const step = event.shiftKey ? KEY_STEP_BIG : event.altKey ? KEY_STEP_FINE : KEY_STEP;
      this.cursor = [norm(Math.min(1, Math.max(0, this.cursor[0] + arrow[0] * step))),
        norm(Math.min(1, Math.max(0, this.cursor[1] + arrow[1] * step)))];
      if (this.draft && this.keyboard) {
        if (this.draft.points) {
          if (this.draft.points.length < MAX_POINTS * 2) this.draft.points.push(...this.cursor);
        } else {
          this.draft.to = this.cursor;
        }
      }
      this.canvas.setAttribute("aria-description", this.where());
      this.draw();
    } else if (event.key === "Enter" || event.key === " ") {
      this.keyEnter();
    } else if (event.key === "Escape" && this.draft && this.keyboard) {
      this.draft = null;
      this.keyboard = false;
      this.say(`The ${this.toolName()} was dropped.`);
      this.draw();
    } else {
      return;
    }
    event.preventDefault();
  }

  keyEnter() {
    const point = this.cursor;
    if (this.tool === "text") {
      this.placeText(point);
      return;
    }
    if (!this.draft) {
      this.keyboard = true;
      this.draft = this.tool === "pen" || this.tool === "eraser"
        ? { kind: this.tool, width: this.width, points: [...point, ...point],
          ...(this.tool === "pen" ? { color: this.color } : {}) }
        : { kind: this.tool, color: this.color, width: this.width, from: point, to: point };
      this.say(`${this.toolName()[0].toUpperCase()}${this.toolName().slice(1)} started at ${
        this.where().slice("Cursor ".length)} Move with the arrows, Enter ends it.`);
      this.draw();
      return;
    }
    const { kind, ...fields } = this.draft;
    this.draft = null;
    this.keyboard = false;
    this.add(kind, fields);
    this.say(`${this.toolName()[0].toUpperCase()}${this.toolName().slice(1)} drawn. ${this.where()}`);
  }

  // Drawing ----------------------------------------------------------------------------------

  resize() {
    const width = this.canvas.parentElement.clientWidth;
    if (!width) return;   // its tab is not shown: drawn when it is
    const ratio = window.devicePixelRatio || 1;
    this.canvas.style.height = `${width / ASPECT}px`;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round((width / ASPECT) * ratio);
    this.draw();
  }

  draw(context = this.context, width = this.canvas.width, height = this.canvas.height) {
    context.clearRect(0, 0, width, height);
    const ops = this.board.visible();
    for (const op of ops) drawOp(context, op, width, height);
    if (this.draft && context === this.context) drawOp(context, this.draft, width, height);
    if (context === this.context && document.activeElement === this.canvas) drawCursor(context, this.cursor, width, height);
    this.canvas.dataset.ops = String(ops.length);
    this.canvas.setAttribute("aria-label", `Shared whiteboard: ${ops.length ? `${ops.length} drawing${ops.length === 1 ? "" : "s"}` : "empty"}`);
  }

  /** A PNG of the board on white, downloaded on this device (never uploaded). */
  exportPng() {
    const out = document.createElement("canvas");
    out.width = this.canvas.width || 1200;
    out.height = this.canvas.height || 900;
    const context = out.getContext("2d");
    const layer = document.createElement("canvas");   // erasers cut through the drawing, not the white
    layer.width = out.width;
    layer.height = out.height;
    this.draw(layer.getContext("2d"), layer.width, layer.height);
    context.fillStyle = "#ffffff";
    context.fillRect(0, 0, out.width, out.height);
    context.drawImage(layer, 0, 0);
    out.toBlob((blob) => {
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = `whiteboard-${new Date().toISOString().slice(0, 16).replace(/[:T]/g, "-")}.png`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    }, "image/png");
  }

  sayState() {
    this.panel.dataset.channel = this.open ? "open" : "closed";
    this.say(this.open ? "" : "Not connected right now: your drawing reaches the other side when you are reconnected.");
    document.getElementById("board-undo").disabled = !this.board.canUndo();
    document.getElementById("board-redo").disabled = !this.board.canRedo();
  }

  say(words) {
    if (this.note.textContent !== words) this.note.textContent = words;
  }

  load() {
    try {
      return JSON.parse(sessionStorage.getItem(STORE_KEY + this.callId) || "{}");
    } catch {
      return {};
    }
  }

  save() {
    try {
      sessionStorage.setItem(STORE_KEY + this.callId, JSON.stringify(this.board.snapshot()));
    } catch (error) {
      console.warn(`interKanect: the whiteboard is not kept over a refresh: ${error.message}`);
    }
  }
}

/** One operation on a 2D context of `width` × `height` pixels. */
/** The keyboard cursor: a crosshair in the page's accent colour, never part of the board. */
function drawCursor(context, [cx, cy], width, height) {
  const x = cx * width;
  const y = cy * height;
  const arm = Math.max(8, width * 0.015);
  context.save();
  context.strokeStyle = "#3b47d1";
  context.lineWidth = Math.max(2, width * 0.002);
  context.beginPath();
  context.moveTo(x - arm, y);
  context.lineTo(x + arm, y);
  context.moveTo(x, y - arm);
  context.lineTo(x, y + arm);
  context.stroke();
  context.restore();
}

export function drawOp(context, op, width, height) {
  const x = (v) => v * width;
  const y = (v) => v * height;
  context.save();
  context.lineCap = "round";
  context.lineJoin = "round";
  context.strokeStyle = op.color || "#000000";
  context.fillStyle = op.color || "#000000";
  context.lineWidth = Math.max(1, (op.width || 0) * width);
  if (op.kind === "eraser") context.globalCompositeOperation = "destination-out";
  context.beginPath();
  switch (op.kind) {
    case "pen": case "eraser": {
      const p = op.points;
      context.moveTo(x(p[0]), y(p[1]));
      for (let i = 2; i < p.length; i += 2) context.lineTo(x(p[i]), y(p[i + 1]));
      if (p.length === 4 && p[0] === p[2] && p[1] === p[3]) context.lineTo(x(p[0]) + 0.01, y(p[1]));   // a dot
      context.stroke();
      break;
    }
    case "line":
      context.moveTo(x(op.from[0]), y(op.from[1]));
      context.lineTo(x(op.to[0]), y(op.to[1]));
      context.stroke();
      break;
    case "rect":
      context.strokeRect(x(op.from[0]), y(op.from[1]), x(op.to[0] - op.from[0]), y(op.to[1] - op.from[1]));
      break;
    case "ellipse": {
      const cx = x((op.from[0] + op.to[0]) / 2);
      const cy = y((op.from[1] + op.to[1]) / 2);
      context.ellipse(cx, cy, Math.abs(x(op.to[0] - op.from[0])) / 2, Math.abs(y(op.to[1] - op.from[1])) / 2, 0, 0, 2 * Math.PI);
      context.stroke();
      break;
    }
    case "text":
      context.font = `${Math.round(op.size * width)}px system-ui, sans-serif`;
      context.textBaseline = "top";
      context.fillText(op.text, x(op.at[0]), y(op.at[1]));
      break;
    default:
      break;
  }
  context.restore();
}
