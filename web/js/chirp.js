// The ring: a short two-note chirp made with the Web Audio API, repeated while a call rings.
// Browsers let a page make sound only after the person has touched it, so the audio is
// unlocked by the first click or key press on the page.

// Long enough apart to be a ring, not an alarm.
const RING_EVERY_MS = 2500;
const NOTES = [{ at: 0, from: 880, to: 1175 }, { at: 0.2, from: 1175, to: 1568 }];
const NOTE_S = 0.16;
const VOLUME = 0.18;

let context = null;

function unlock() {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context) return;
  context ??= new Context();
  if (context.state === "suspended") context.resume().catch(() => {});
}

/** Let the page make sound from the first gesture on. Idempotent. */
export function unlockSoundOnFirstGesture() {
  const events = ["pointerdown", "keydown", "touchstart"];
  const once = () => {
    unlock();
    events.forEach((name) => window.removeEventListener(name, once, true));
  };
  events.forEach((name) => window.addEventListener(name, once, true));
}

export function soundUnlocked() {
  return context !== null && context.state === "running";
}

/** One chirp now; false when the page may not make sound yet. */
export function chirp() {
  if (!soundUnlocked()) return false;
  const start = context.currentTime + 0.02;
  for (const note of NOTES) {
    const oscillator = context.createOscillator();
    const gain = context.createGain();
    const t = start + note.at;
    oscillator.type = "sine";
    oscillator.frequency.setValueAtTime(note.from, t);
    oscillator.frequency.exponentialRampToValueAtTime(note.to, t + NOTE_S);
    gain.gain.setValueAtTime(0.0001, t);
    gain.gain.exponentialRampToValueAtTime(VOLUME, t + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + NOTE_S);
    oscillator.connect(gain).connect(context.destination);
    oscillator.start(t);
    oscillator.stop(t + NOTE_S + 0.02);
  }
  return true;
}

/** Chirps every few seconds until stopped; `onChirp(played)` reports each attempt. */
export class Ringer {
  constructor(onChirp = () => {}) {
    this.onChirp = onChirp;
    this.timer = null;
  }

  start() {
    if (this.timer !== null) return;
    const ring = () => this.onChirp(chirp());
    ring();
    this.timer = setInterval(ring, RING_EVERY_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }
}
