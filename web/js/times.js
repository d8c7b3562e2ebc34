// Dates and times in the viewer's own time zone and language (Intl.DateTimeFormat with the
// browser's defaults), as <time> elements that carry the exact instant for machines.

import { el } from "./dom.js";

const FORMATS = {
  // "Fri, May 15, 2026, 7:00 PM"
  dateTime: { weekday: "short", year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit" },
  // "Friday, May 15, 2026 at 7:00 PM PDT": a payout or a deadline, where the zone matters
  long: { weekday: "long", year: "numeric", month: "long", day: "numeric", hour: "numeric", minute: "2-digit",
    timeZoneName: "short" },
  // "7:03:12 PM": one line of a call's log
  clock: { hour: "numeric", minute: "2-digit", second: "2-digit" },
};

/** The instant (ISO 8601 text, epoch milliseconds or a Date) in words of `style`. */
export function timeText(instant, style = "dateTime") {
  return new Intl.DateTimeFormat(undefined, FORMATS[style]).format(toDate(instant));
}

/** A <time datetime="…"> showing `instant` in the viewer's zone. */
export function timeElement(instant, style = "dateTime", props = {}) {
  const date = toDate(instant);
  return el("time", { datetime: date.toISOString(), ...props }, timeText(date, style));
}

/** The viewer's time zone by name ("Asia/Tokyo"), said next to times where it matters. */
export function viewerZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

function toDate(instant) {
  return instant instanceof Date ? instant : new Date(instant);
}
