// Refund requests as the pages say them: the state's name, and what it means for the caller,
// the host and the operator. The rules (window, deadline, amount) are the server's.

import { moneyText } from "./money.js";

export const STATE_NAMES = { open: "Under review", approved: "Approved", refunded: "Refunded", denied: "Denied" };

/** What the refund of a request gives back, in words: "$12.49 of the $15.00 paid". */
export function amountWords(refund) {
  if (refund.refund_cents === null || refund.refund_cents === undefined) return moneyText(refund.paid_cents);
  return `${moneyText(refund.refund_cents)} of the ${moneyText(refund.paid_cents)} paid`;
}

/** One sentence on where the request stands, for the caller or the host. */
export function standingWords(refund, role) {
  const caller = refund.caller.name;
  const money = amountWords(refund);
  switch (refund.state) {
    case "open": return role === "caller"
      ? `Your request is under review. If it is approved, ${money} comes back to you (PayPal keeps its fees).`
      : `${caller} asked for a refund of this call. An operator reviews it and may ask you about the call.`;
    case "approved": return role === "caller" ? `Approved: ${money} is on its way back to your PayPal account.`
      : `The refund was approved: ${money} goes back to ${caller}.`;
    case "refunded": return role === "caller" ? `Refunded: ${money} went back to your PayPal account.`
      : `The call was refunded: ${money} went back to ${caller}.`;
    case "denied": return role === "caller" ? "Your request was denied: nothing is refunded."
      : "The refund request was denied: your earnings from this call stand.";
    default: return refund.state;
  }
}
