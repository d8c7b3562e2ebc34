// The server's clock as the pages see it, and countdowns in words. Deadlines in frames are
// the server's epoch milliseconds; a computer whose clock is off would count them wrong.

// The HTTP Date header has a resolution of one second: an offset smaller than this is noise.
const OFFSET_NOISE_MS = 1500;

let offsetMs = 0;   // server clock minus ours, once a response has shown they differ

/** Learn the server's clock from a response's Date header, read between `sentAt` and `receivedAt`. */
export function noteServerDate(dateHeader, sentAt, receivedAt) {
  const server = Date.parse(dateHeader || "");
  if (Number.isNaN(server)) return;
  // The header is truncated to the second: its true time is half a second later on average.
  const measured = server + 500 - (sentAt + receivedAt) / 2;
  offsetMs = Math.abs(measured) > OFFSET_NOISE_MS ? measured : 0;
}

/** Now, in the server's epoch milliseconds. */
export function serverNow() {
  return Date.now() + offsetMs;
}

/** Milliseconds from now until the server time `epochMs` (never negative). */
export function msUntil(epochMs) {
  return Math.max(0, epochMs - serverNow());
}

/** "4:05", "1:02:09": a countdown as shown on screen, rounded up to the whole second. */
export function clockText(ms) {
  const total = Math.ceil(Math.max(0, ms) / 1000);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

/** "10 minutes", "1 hour 30 minutes", "45 seconds": a length of time in words. */
export function lengthWords(seconds) {
  const s = Math.round(seconds);
  if (s < 60) return plural(s, "second");
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  const parts = [];
  if (hours) parts.push(plural(hours, "hour"));
  if (minutes) parts.push(plural(minutes, "minute"));
  if (rest) parts.push(plural(rest, "second"));
  return parts.join(" ");
}

function plural(count, unit) {
  return `${count} ${unit}${count === 1 ? "" : "s"}`;
}
