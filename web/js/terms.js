// Terms as people type and read them: dollars ↔ integer cents (never floats for money),
// minutes ↔ seconds. The server's rules decide what is allowed; this only reads the input.

import { lengthWords } from "./clock.js";
import { FormError } from "./forms.js";

/** "15", "15.5", "$15.50", "1,250.00" → cents, read digit by digit (no float rounding). */
export function centsFromDollars(text) {
  const cleaned = String(text).trim().replace(/^\$/, "").replace(/,/g, "");
  const match = /^(\d{1,7})(?:\.(\d{0,2}))?$/.exec(cleaned) || /^()\.(\d{1,2})$/.exec(cleaned);
  if (!match) {
    throw new FormError("price_format", "enter the price in dollars, like 15 or 15.50 (0 for a free call)", "price");
  }
  const [, whole, fraction = ""] = match;
  return Number(whole || "0") * 100 + Number(fraction.padEnd(2, "0"));
}

/** "10" or "2.5" minutes, or "1:30" (minutes:seconds) → whole seconds. */
export function secondsFromMinutes(text) {
  const cleaned = String(text).trim();
  const clock = /^(\d{1,4}):([0-5]\d)$/.exec(cleaned);
  if (clock) return Number(clock[1]) * 60 + Number(clock[2]);
  if (/^(\d{1,4}(\.\d*)?|\.\d+)$/.test(cleaned)) return Math.round(Number(cleaned) * 60);
  throw new FormError("length_format", "enter the length in minutes, like 30, 2.5 or 1:30", "minutes");
}

/** 1500 → "$15.00"; 0 → "Free". */
export function priceText(cents) {
  if (cents === 0) return "Free";
  return `$${Math.floor(cents / 100).toLocaleString("en-US")}.${String(cents % 100).padStart(2, "0")}`;
}

/** Terms in one line: "$15.00 for 10 minutes" or "Free for 20 minutes". */
export function termsText(terms) {
  return `${priceText(terms.price_cents)} for ${lengthWords(terms.length_s)}`;
}

/** What the minutes field shows for a length the host proposed before. */
export function minutesText(seconds) {
  if (seconds % 60 === 0) return String(seconds / 60);
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

/** What the price field shows for a price proposed before. */
export function dollarsText(cents) {
  return cents % 100 === 0 ? String(cents / 100) : `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, "0")}`;
}
