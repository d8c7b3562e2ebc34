// Short notes in a corner of the page ("Carl tipped you $5.00"): the #toasts region is a polite
// live region, so screen readers read each note as it comes. A note goes by itself after a
// while (not while the pointer or the focus is on it) or with its close button.

import { el } from "./dom.js";

const SHOW_MS = 15_000;
const RECHECK_MS = 2_000;

/** Show `words` (text or nodes) as a toast; `dataset` marks it (for styling and tests). Returns its element. */
export function toast(words, { kind = "info", dataset = {} } = {}) {
  const region = toastRegion();
  const close = el("button", { type: "button", class: "toast__close", "aria-label": "Dismiss" });
  close.append(el("span", { "aria-hidden": "true" }, "×"));
  const note = el("div", { class: `toast toast--${kind}`, dataset }, el("p", { class: "toast__text" }, words), close);
  close.addEventListener("click", () => note.remove());
  region.append(note);
  const expire = () => {
    if (!note.isConnected) return;
    if (note.matches(":hover, :focus-within")) setTimeout(expire, RECHECK_MS);
    else note.remove();
  };
  setTimeout(expire, SHOW_MS);
  return note;
}

/** The page's toast region: the call page has it in its HTML; any other page gets one here
 * (made early, at the page's start, a screen reader reads what comes into it). */
export function toastRegion() {
  const existing = document.getElementById("toasts");
  if (existing) return existing;
  const region = el("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
  document.body.append(region);
  return region;
}
