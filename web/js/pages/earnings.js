// The member's earnings (/earnings): pending, available (negative: owed back after a refund),
// held by a dispute, paid out; the next payout in the viewer's time zone; past payouts.

import * as api from "../api.js";
import { el } from "../dom.js";
import { moneyText } from "../money.js";
import { pageReady, runPage, startPage } from "../page.js";
import { timeElement, viewerZone } from "../times.js";

const PAYOUT_STATUS = {
  sent: "Sent", sending: "Sending", refused: "Refused by PayPal; will be sent again",
  skipped: "Skipped", SUCCESS: "Paid", PENDING: "Processing", UNCLAIMED: "Waiting for you to claim it in PayPal",
  ONHOLD: "On hold at PayPal", FAILED: "Failed", RETURNED: "Returned", BLOCKED: "Blocked", REFUNDED: "Refunded",
  REVERSED: "Reversed", CANCELED: "Cancelled",
};
const SKIP_REASONS = { no_payout_email: "no PayPal payout email on your account",
  invalid_payout_email: "the payout email on your account is not a valid address" };

function amount(id, cents) {
  const node = document.getElementById(id);
  node.textContent = moneyText(cents);
  node.dataset.cents = String(cents);
  node.classList.toggle("balance__amount--negative", cents < 0);
}

function availableMeaning(cents) {
  if (cents < 0) {
    return `You owe ${moneyText(-cents)}: a refund took back earnings that had already been paid out. `
      + "Your next earnings cover it first; nothing is paid until it is covered, and nobody asks you to pay it back otherwise.";
  }
  if (cents > 0) return "Goes to your PayPal account with the next payout.";
  return "Nothing is waiting for the next payout.";
}

function statusWords(payout) {
  let words = PAYOUT_STATUS[payout.status] || payout.status;
  if (payout.status === "skipped") words += `: ${SKIP_REASONS[payout.reason] || payout.reason}; the money waits for the next payout`;
  if (payout.returned) words += " — the money came back to your balance";
  return words;
}

function payoutRow(payout) {
  return el("tr", { dataset: { batchId: payout.batch_id, status: payout.status } },
    el("td", { "data-label": "Payout" }, timeElement(payout.payout_at)),
    el("td", { "data-label": "Amount", class: "num" }, moneyText(payout.amount_cents)),
    el("td", { "data-label": "To", class: "wrap" }, payout.receiver || "—"),
    el("td", { "data-label": "Status" }, statusWords(payout)));
}

async function main() {
  const { me } = await startPage({ memberOnly: true });
  const earnings = await api.get("/api/earnings");
  amount("pending", earnings.pending_cents);
  amount("available", earnings.available_cents);
  amount("frozen", earnings.frozen_cents);
  amount("paid-out", earnings.paid_out_cents);
  document.getElementById("frozen-card").hidden = earnings.frozen_cents === 0;
  document.getElementById("available-meaning").textContent = availableMeaning(earnings.available_cents);
  document.getElementById("payout-email-note").hidden = Boolean(me.payout_email);
  document.getElementById("earnings-zone").textContent = viewerZone();
  document.getElementById("next-payout").replaceChildren(
    timeElement(earnings.next_payout_at, "long", { id: "next-payout-at" }));
  const rows = earnings.payouts.map(payoutRow);
  document.querySelector("#payouts tbody").replaceChildren(...rows);
  document.getElementById("payouts").hidden = rows.length === 0;
  document.getElementById("payouts-empty").hidden = rows.length > 0;
  document.getElementById("earnings").hidden = false;
  pageReady();
}

runPage(main);
