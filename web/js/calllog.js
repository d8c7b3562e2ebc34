// A past call in words (GET /api/calls, /api/calls/<id>): who called whom, when, how it ended,
// its length, each round's terms with their fingerprint, payments and tips, and its log, one
// line per event with the time in the viewer's zone. The history pages, the operators' refund
// review and the call page's log panel (js/roomlog.js: namesOf() and logList()) draw with it.
// Text only: every value from the server is set as text, never parsed as HTML.

import { endReasonWords } from "./endreasons.js";
import { lengthWords } from "./clock.js";
import { el } from "./dom.js";
import { moneyText, sumCents } from "./money.js";
import { termsText } from "./terms.js";
import { timeElement } from "./times.js";

const STATE_WORDS = {
  ringing: "Ringing.", negotiating: "Talking terms.", awaiting_payment: "Waiting for the payment.",
  running: "In progress.", extension_offered: "Time is up; the host is deciding on more.",
};

/** {host, caller, mine}: the two names of a call from a participant's summary and their own
 * name; `mine` is the viewer's side (null for an operator, who is neither). */
export function namesOf(call, myName) {
  if (call.role === "operator") return { host: call.host.name, caller: call.caller.name, mine: null };
  return call.role === "host" ? { host: myName, caller: call.with.name, mine: "host" }
    : { host: call.with.name, caller: myName, mine: "caller" };
}

function who(names, side) {
  return names[side] || "Someone";
}

/** How the call ended (or where it stands), in words for the viewer. */
export function outcomeWords(call, names) {
  if (call.state !== "ended") return STATE_WORDS[call.state] || call.state;
  if (call.end_reason === "hung_up") {
    // Who hung up: the summary's `ended_by` when it has one, else the log's end.
    const ended = (call.log || []).find((entry) => entry.event === "ended");
    const by = call.ended_by || (ended && ended.by);
    if (!by) return "The call was hung up.";
    return by === names.mine ? "You hung up." : `${who(names, by)} hung up.`;
  }
  // An operator is neither side: the host's words name the caller, which reads right for them.
  const state = { role: names.mine || "host", end_reason: call.end_reason,
    host: { name: names.host }, caller: { name: names.caller } };
  return endReasonWords(state);
}

/** From answer to end ("not answered" when nobody picked up), and the paid time used. */
export function lengthText(call) {
  if (!call.answered_at) return "Not answered";
  const end = call.ended_at ? Date.parse(call.ended_at) : null;
  const talk = end === null ? "still going on" : lengthWords((end - Date.parse(call.answered_at)) / 1000);
  return call.paid_s ? `${talk} (${lengthWords(call.used_s || 0)} of ${lengthWords(call.paid_s)} paid time used)`
    : talk;
}

/** The captured tips of a call, in cents. */
export function tipsCents(call) {
  return sumCents((call.tips || []).map((tip) => tip.amount_cents));
}

function paymentWords(payment) {
  const fee = payment.fee_cents;
  return fee === undefined || fee === null ? `${moneyText(payment.amount_cents)} for round ${payment.round}`
    : `${moneyText(payment.amount_cents)} for round ${payment.round} (PayPal fee ${moneyText(fee)}, `
      + `host earns ${moneyText(payment.amount_cents - fee)})`;
}

/** The rounds' agreed terms, each with its fingerprint. */
export function roundsList(call) {
  return el("ol", { class: "round-list" }, ...call.rounds.map((round) => el("li", { dataset: { round: round.round } },
    `Round ${round.round}: ${termsText(round)} · `,
    el("span", { class: "fingerprint", title: "Terms fingerprint" }, round.fingerprint))));
}

/** Time each side was connected, from the call's detail. */
export function connectedText(call, names) {
  const connected = call.connected_s || {};
  return ["host", "caller"].filter((side) => side in connected)
    .map((side) => `${who(names, side)} ${lengthWords(connected[side])}`).join(", ");
}

/** The call's facts as a description list: when, length, outcome, terms, payments, tips. */
export function factsList(call, names) {
  const rows = [["Called", timeElement(call.created_at, "long")]];
  if (call.ended_at) rows.push(["Ended", timeElement(call.ended_at, "long")]);
  rows.push(["Length", lengthText(call)], ["Outcome", outcomeWords(call, names)]);
  if (call.connected_s) rows.push(["Connected", connectedText(call, names) || "—"]);
  rows.push(["Terms", call.rounds.length ? roundsList(call) : "No terms were agreed."]);
  rows.push(["Payments", call.payments.length
    ? el("ul", {}, ...call.payments.map((payment) => el("li", { dataset: { round: payment.round } },
      paymentWords(payment)))) : "Nothing paid."]);
  if ((call.tips || []).length) {
    rows.push(["Tips", el("ul", {}, ...call.tips.map((tip) => el("li", { dataset: { tip: tip.tip } },
      `Tip of ${moneyText(tip.amount_cents)}`)))]);
  }
  return el("dl", { class: "facts" }, ...rows.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

// A long call's log lists joins, drops, proposals and tip requests up to its cap, then counts
// the rest in one "summarised" entry (money and state changes are always listed).
const SUMMARISED_WORDS = {
  joined: ["join", "joins"], left: ["drop", "drops"], proposed: ["proposal", "proposals"],
  renegotiate: ["request to renegotiate", "requests to renegotiate"],
  tip_requested: ["tip started", "tips started"], tip_failed: ["failed tip", "failed tips"],
};

/** "37 joins, 36 drops, 12 proposals" from a summary's counts, in the order they first came. */
function summarisedWords(counts) {
  return Object.entries(counts || {}).map(([event, n]) => {
    const [one, many] = SUMMARISED_WORDS[event] || [event, event];
    return `${n} ${n === 1 ? one : many}`;
  }).join(", ");
}

/** One line of the log in words. Unknown events still show, by their name. */
export function entryWords(entry, names, call = {}) {
  const terms = (t) => (t ? `${termsText(t)} (fingerprint ${t.fingerprint})` : "terms");
  switch (entry.event) {
    case "ringing": return `${who(names, "caller")} called ${who(names, "host")}.`;
    case "accepted": return `${who(names, "host")} answered.`;
    case "missed": return `${who(names, "host")} did not answer.`;
    case "joined": return `${who(names, entry.side)} connected.`;
    case "left": return `${who(names, entry.side)} left or lost the connection.`;
    case "proposed": return `${who(names, "host")} offered ${terms(entry.terms)}.`;
    case "renegotiate": return `${who(names, "caller")} asked to renegotiate.`;
    case "agreed": return `${who(names, "caller")} agreed to ${terms(entry.terms)}.`;
    case "order_created": return `PayPal payment prepared for round ${entry.round}.`;
    case "payment_captured": return `Payment of ${moneyText(entry.amount_cents || 0)} captured for round ${entry.round}.`;
    case "payment_failed": return `The payment for round ${entry.round} failed (${entry.reason || "no reason given"}).`;
    case "running": return `Paid time started: round ${entry.round}, ${lengthWords(entry.length_s)}.`;
    case "time_up": return "The paid time ran out.";
    case "extension": return `${who(names, "host")} offered more time.`;
    case "tip_requested": return `${who(names, "caller")} started a tip of ${moneyText(entry.amount_cents || 0)}.`;
    case "tip_captured": return `Tip of ${moneyText(entry.amount_cents || 0)} captured.`;
    case "tip_failed": return `A tip did not go through (${entry.reason || "no reason given"}).`;
    case "summarised": return `Counted from here on, not listed: ${summarisedWords(entry.counts)}.`;
    case "ended": {
      const words = outcomeWords({ ...call, state: "ended", end_reason: entry.reason, ended_by: entry.by }, names);
      const unused = Math.round(entry.unused_paid_s || 0);
      return unused ? `${words} Unused paid time: ${lengthWords(unused)}.` : words;
    }
    default: return `${entry.event}.`;
  }
}

/** The log as an ordered list (empty when nothing was logged): each line with its time
 * (seconds shown, viewer's zone) and its words. */
export function logList(call, names) {
  return el("ol", { class: "call-log" }, ...(call.log || []).map((entry) => el("li",
    { class: "call-log__entry", dataset: { event: entry.event } },
    timeElement(entry.at_s * 1000, "clock", { class: "call-log__time" }), " ",
    el("span", { class: "call-log__text" }, entryWords(entry, names, call)))));
}
