// What an amount leaves the member after PayPal's fee, said as it is typed: asked of the
// server's one fee rule (GET /api/fees), never computed here. Answers that arrive after a
// newer keystroke's are dropped; a pause of a quarter second asks once.

import * as api from "./api.js";
import { priceText } from "./terms.js";

const PAUSE_MS = 250;

/** Keep `output` saying `words(split)` for the dollars in `input` (`split`: {amount_cents,
 * fee_cents, net_cents, free}); empty input hides it, an amount the server refuses says why.
 * `amountText()` may give the amount from elsewhere (a preset); returns a function to say it now. */
export function followFees(input, output, words, amountText = () => input.value) {
  let asked = 0;
  let timer = null;
  const say = async () => {
    const text = amountText().trim();
    const mine = ++asked;
    if (!text) {
      output.hidden = true;
      return;
    }
    let shown;
    try {
      shown = words(await api.get(`/api/fees?amount=${encodeURIComponent(text)}`));
      output.dataset.state = "ok";
    } catch (error) {
      if (!(error instanceof api.ApiError)) throw error;
      shown = error.message;
      output.dataset.state = error.code;
    }
    if (mine !== asked) return;   // a newer amount was typed meanwhile
    output.textContent = shown;
    output.hidden = false;
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(say, PAUSE_MS);
  });
  return say;
}

/** The host's words for a price: what the caller pays, PayPal keeps, the host earns. */
export function hostEarnsWords(split) {
  if (split.free) return "A free call: nobody pays.";
  return `The caller pays ${priceText(split.amount_cents)}; PayPal keeps ${priceText(split.fee_cents)}; `
    + `you earn ${priceText(split.net_cents)}.`;
}

/** The caller's words for a tip: what the host receives of it. */
export function hostReceivesWords(host) {
  return (split) => (split.free ? "" : `${host} receives ${priceText(split.net_cents)} of it; PayPal keeps `
    + `${priceText(split.fee_cents)}.`);
}
