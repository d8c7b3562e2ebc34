// The shared whiteboard as data, with no DOM: a list of drawing operations in normalised
// coordinates (0..1 of the board's width and height, so boards of any size show the same
// picture), their undo state, and the rules both peers follow to end up with the same board.
//
// Order: every operation carries a Lamport clock and its author, and the board is sorted by
// (clock, author, id); two peers that hold the same operations therefore draw them in the same
// order, whatever order they arrived in. Merging is a union by id, so a snapshot can be sent
// again, in pieces, or crossed with the other side's snapshot without harm.
// Undo is per author: an author undoes (and redoes) only their own operations. Whether an
// operation is undone is a flag with a version that only its author bumps; the higher version
// wins a merge. "clear" is an operation too: it hides everything before it, for both sides, and
// its author can undo it.

export const KINDS = ["pen", "eraser", "line", "rect", "ellipse", "text", "clear"];
export const MAX_POINTS = 4000;          // per stroke: a long scribble, well under a channel message
export const MAX_TEXT = 200;             // characters of one text label
export const MAX_OPS = 5000;             // a board that has more is not taking any more
const COLOUR = /^#[0-9a-f]{6}$/;

/** A coordinate as sent: clamped to the board and rounded (four decimals: 0.1 px at 1000 px). */
export function norm(value) {
  return Math.round(Math.min(1, Math.max(0, value)) * 10000) / 10000;
}

function isPoint(point) {
  return Array.isArray(point) && point.length === 2 && point.every((v) => Number.isFinite(v) && v >= 0 && v <= 1);
}

function isSize(value) {
  return Number.isFinite(value) && value > 0 && value <= 0.2;
}

/** Is `op` a well-formed operation? Everything from the other side is checked before it is drawn. */
export function validOp(op) {
  if (!op || typeof op !== "object" || typeof op.id !== "string" || op.id.length > 64) return false;
  if (typeof op.author !== "string" || op.author.length > 64 || !Number.isInteger(op.clock) || op.clock < 1) return false;
  if (!KINDS.includes(op.kind)) return false;
  switch (op.kind) {
    case "clear": return true;
    case "pen": case "eraser":
      return (op.kind === "eraser" || COLOUR.test(op.color)) && isSize(op.width) && Array.isArray(op.points)
        && op.points.length >= 2 && op.points.length <= MAX_POINTS * 2 && op.points.length % 2 === 0
        && op.points.every((v) => Number.isFinite(v) && v >= 0 && v <= 1);
    case "line": case "rect": case "ellipse":
      return COLOUR.test(op.color) && isSize(op.width) && isPoint(op.from) && isPoint(op.to);
    case "text":
      return COLOUR.test(op.color) && isSize(op.size) && isPoint(op.at) && typeof op.text === "string"
        && op.text.length > 0 && op.text.length <= MAX_TEXT;
    default: return false;
  }
}

function before(a, b) {
  if (a.clock !== b.clock) return a.clock < b.clock;
  if (a.author !== b.author) return a.author < b.author;
  return a.id < b.id;
}

function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Board {
  /** `author`: this side's name on its operations (the member's role in the call). */
  constructor(author) {
    this.author = author;
    this.ops = [];               // sorted by (clock, author, id)
    this.ids = new Set();
    this.flags = new Map();      // op id → {undone, v}
    this.clock = 0;
    this.redoStack = [];         // this author's undone op ids, latest last (not shared: local only)
  }

  /** A new operation by this author, applied here; send it to the other side. */
  make(kind, fields = {}) {
    const op = { id: newId(), author: this.author, clock: this.clock + 1, kind, ...fields };
    if (!validOp(op) || !this.apply(op)) return null;
    this.redoStack = [];
    return op;
  }

  /** An operation (ours or theirs); false when it is known, malformed or the board is full. */
  apply(op) {
    if (this.ids.has(op.id) || !validOp(op) || this.ops.length >= MAX_OPS) return false;
    let at = this.ops.length;
    while (at > 0 && before(op, this.ops[at - 1])) at -= 1;
    this.ops.splice(at, 0, op);
    this.ids.add(op.id);
    this.clock = Math.max(this.clock, op.clock);
    return true;
  }

  isUndone(id) {
    return this.flags.get(id)?.undone === true;
  }

  /** A flag from either side: the higher version wins (only the op's author bumps it). */
  applyFlag({ id, undone, v }) {
    if (typeof id !== "string" || typeof undone !== "boolean" || !Number.isInteger(v)) return false;
    const known = this.flags.get(id);
    if (known && known.v >= v) return false;
    this.flags.set(id, { undone, v });
    return true;
  }

  setFlag(id, undone) {
    const flag = { id, undone, v: (this.flags.get(id)?.v || 0) + 1 };
    this.applyFlag(flag);
    return flag;
  }

  // Where the board starts now: just after the last clear that is not undone.
  liveFrom() {
    for (let i = this.ops.length - 1; i >= 0; i -= 1) {
      if (this.ops[i].kind === "clear" && !this.isUndone(this.ops[i].id)) return i;
    }
    return 0;
  }

  /** Undo this author's latest operation still on the board (the clear that emptied it counts). */
  undo() {
    const from = this.liveFrom();
    for (let i = this.ops.length - 1; i >= from; i -= 1) {
      const op = this.ops[i];
      if (op.author === this.author && !this.isUndone(op.id)) {
        this.redoStack.push(op.id);
        return this.setFlag(op.id, true);
      }
    }
    return null;
  }

  /** Redo this author's most recent undo; null when there is nothing to redo. */
  redo() {
    while (this.redoStack.length) {
      const id = this.redoStack.pop();
      if (this.isUndone(id)) return this.setFlag(id, false);
    }
    return null;
  }

  canUndo() {
    const from = this.liveFrom();
    return this.ops.slice(from).some((op) => op.author === this.author && !this.isUndone(op.id));
  }

  canRedo() {
    return this.redoStack.some((id) => this.isUndone(id));
  }

  /** What is drawn, in order: operations after the last clear in force, none undone. */
  visible() {
    return this.ops.slice(this.liveFrom()).filter((op) => op.kind !== "clear" && !this.isUndone(op.id));
  }

  /** Everything the other side needs to hold the same board. */
  snapshot() {
    return { ops: this.ops.slice(), flags: [...this.flags].map(([id, flag]) => ({ id, ...flag })) };
  }

  /** Merge a snapshot (or a piece of one); returns whether anything changed. */
  merge({ ops = [], flags = [] } = {}) {
    let changed = false;
    for (const op of ops) changed = this.apply(op) || changed;
    for (const flag of flags) changed = this.applyFlag(flag) || changed;
    return changed;
  }
}
