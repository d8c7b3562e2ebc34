// The member's calls (/history) and one call in detail (/history/<call id>): who, when, how it
// ended, terms with fingerprints, payments and tips, the call's log, and the refund request
// (the caller asks for one here; both sides see where it stands).

import * as api from "../api.js";
import { factsList, lengthText, logList, namesOf, outcomeWords, tipsCents } from "../calllog.js";
import { el } from "../dom.js";
import { FormError, handleForm, sentence } from "../forms.js";
import { moneyText } from "../money.js";
import { pageReady, runPage, startPage } from "../page.js";
import { clockText, qualityChart } from "../qualitychart.js";
import { STATE_NAMES, standingWords } from "../refunds.js";
import { termsText } from "../terms.js";
import { timeElement, viewerZone } from "../times.js";

const CALL_PATH = /^\/history\/([0-9a-f]{24})$/;

function callRow(call, me) {
  const names = namesOf(call, me.display_name);
  const caller = call.role === "caller";
  const money = [];
  if (call.paid_cents) money.push(`${moneyText(call.paid_cents)} paid`);
  if (tipsCents(call)) money.push(`${moneyText(tipsCents(call))} in tips`);
  return el("li", { class: "history-call card", dataset: { callId: call.id, role: call.role, state: call.state } },
    el("div", { class: "history-call__head" },
      el("a", { class: "history-call__link", href: `/history/${call.id}` },
        caller ? `You called ${call.with.name}` : `${call.with.name} called you`),
      el("span", { class: "badge", dataset: { role: call.role } }, caller ? "Caller" : "Host")),
    el("p", { class: "history-call__when" }, timeElement(call.created_at)),
    el("p", { class: "history-call__outcome", dataset: { endReason: call.end_reason || "" } },
      outcomeWords(call, names)),
    el("ul", { class: "history-call__facts" },
      el("li", {}, `Length: ${lengthText(call)}`),
      ...call.rounds.map((round) => el("li", { class: "history-call__terms" },
        `Round ${round.round}: ${termsText(round)} · `,
        el("span", { class: "fingerprint", title: "Terms fingerprint" }, round.fingerprint))),
      el("li", { class: "history-call__money" }, money.length ? money.join(", ") : "Nothing paid")));
}

async function showList(me) {
  const { calls } = await api.get("/api/calls");
  document.getElementById("history-zone").textContent = viewerZone();
  document.getElementById("calls").replaceChildren(...calls.map((call) => callRow(call, me)));
  document.getElementById("history-empty").hidden = calls.length > 0;
  document.getElementById("history").hidden = false;
}

// Refunds --------------------------------------------------------------------------------

async function refundOf(callId) {
  try {
    return await api.get(`/api/calls/${callId}/refund`);
  } catch (error) {
    if (error.code === "no_refund_request") return null;
    throw error;
  }
}

function showRefund(refund, role) {
  const status = document.getElementById("refund-status");
  status.dataset.state = refund.state;
  const lines = [
    el("p", {}, el("span", { id: "refund-state", class: "badge", dataset: { state: refund.state } },
      STATE_NAMES[refund.state] || refund.state)),
    el("p", { id: "refund-standing" }, standingWords(refund, role)),
    el("p", {}, "Requested ", timeElement(refund.requested_at, "long", { id: "refund-requested-at" }), "."),
  ];
  if (refund.state === "open") {
    lines.push(el("p", {}, "Decision due by ", timeElement(refund.deadline, "long", { id: "refund-deadline" }), "."));
  } else if (refund.decided_at) {
    lines.push(el("p", {}, "Decided ", timeElement(refund.decided_at, "long", { id: "refund-decided-at" }), "."));
  }
  lines.push(el("p", { class: "refund-reason" }, el("strong", {}, role === "caller" ? "Your reason: " : "Reason given: "),
    refund.reason));
  if (refund.moment_s !== null && refund.moment_s !== undefined) {
    lines.push(el("p", { id: "refund-moment" }, `Points at ${clockText(refund.moment_s)} on the connection chart.`));
  }
  if (refund.decision_note) {
    lines.push(el("p", { id: "refund-decision-note" }, el("strong", {}, "Operator's note: "), refund.decision_note));
  }
  status.replaceChildren(...lines);
  document.getElementById("refund-form").hidden = true;
  document.getElementById("refund").hidden = false;
}

// "3:05" (or "185") → 185 seconds; "" → null.
function momentSeconds(text) {
  const words = (text || "").trim();
  if (!words) return null;
  const match = /^(?:(\d+):)?(\d+)$/.exec(words);
  if (!match || (match[1] !== undefined && Number(match[2]) > 59)) {
    throw new FormError("moment_format", "write the moment as minutes and seconds, like 3:05", "moment");
  }
  return Number(match[1] || 0) * 60 + Number(match[2]);
}

function offerRefundForm(call, names) {
  const form = document.getElementById("refund-form");
  const status = document.getElementById("refund-status");
  status.replaceChildren(el("p", {}, `You paid ${moneyText(call.paid_cents)} for this call.`));
  form.hidden = false;
  document.getElementById("refund").hidden = false;
  const moment = document.getElementById("moment");
  if (hasQuality(call)) {
    document.getElementById("moment-field").hidden = false;
    // Clicking the chart writes the moment; the chart then marks it.
    const pick = (seconds) => {
      moment.value = clockText(seconds);
      showQuality(call, names, { moment: seconds, onPick: pick });
    };
    showQuality(call, names, { onPick: pick });
  }
  handleForm(form, async ({ reason, moment: momentText }) => {
    const refund = await api.post(`/api/calls/${call.id}/refund`, { reason, moment_s: momentSeconds(momentText) });
    showRefund(refund, "caller");
    showQuality(call, names, { moment: refund.moment_s });
    status.focus();
  }, { reason_required: "reason", reason_too_long: "reason", invalid_moment: "moment" });
}

function hasQuality(call) {
  return Boolean(call.quality && (call.quality.host.length || call.quality.caller.length));
}

function showQuality(call, names, options = {}) {
  document.getElementById("quality-chart").replaceChildren(qualityChart(call, names, options));
  document.getElementById("quality").hidden = !call.answered_at;
}

async function showRefundSection(call, names) {
  if (call.state !== "ended") return;
  let refund;
  try {
    refund = await refundOf(call.id);
  } catch (error) {
    if (!(error instanceof api.ApiError)) throw error;
    document.getElementById("refund-status").replaceChildren(
      el("p", { class: "notice notice--error", id: "refund-error", dataset: { errorCode: error.code } },
        `Cannot tell whether a refund was asked for: ${sentence(error.message)}`));
    document.getElementById("refund").hidden = false;
    return;
  }
  if (refund) {
    showRefund(refund, call.role);
    if (refund.moment_s !== null && refund.moment_s !== undefined) showQuality(call, names, { moment: refund.moment_s });
  } else if (call.role === "caller" && call.paid_cents > 0) {
    offerRefundForm(call, names);
  }
}

// One call ----------------------------------------------------------------------------------

async function showCall(me, callId) {
  let call;
  try {
    call = (await api.get(`/api/calls/${callId}`)).call;
  } catch (error) {
    if (error.code !== "no_such_call") throw error;
    document.getElementById("call-missing").hidden = false;
    return;
  }
  const names = namesOf(call, me.display_name);
  const title = call.role === "caller" ? `Your call to ${call.with.name}` : `${call.with.name}'s call to you`;
  document.title = `${title} · interKanect`;
  document.getElementById("detail-heading").textContent = title;
  const detail = document.getElementById("call-detail");
  Object.assign(detail.dataset, { callId: call.id, role: call.role, state: call.state });
  document.getElementById("detail-role").textContent = call.role === "caller"
    ? `You were the caller; ${call.with.name} hosted. Times are in your time zone (${viewerZone()}).`
    : `You hosted; ${call.with.name} called. Times are in your time zone (${viewerZone()}).`;
  document.getElementById("detail-facts").replaceChildren(factsList(call, names));
  document.getElementById("call-log").replaceChildren(logList(call, names));
  showQuality(call, names);
  await showRefundSection(call, names);
  showRecordSection(call);
  detail.hidden = false;
}

// The signed record: downloaded once the call has ended; any record checked by the server.
function showRecordSection(call) {
  if (call.state !== "ended") return;
  document.getElementById("record-download").href = `/api/calls/${call.id}/record`;
  const form = document.getElementById("record-check");
  const verdict = document.getElementById("record-verdict");
  handleForm(form, async () => {
    const file = document.getElementById("record-file").files[0];
    if (!file) throw new FormError("record_required", "choose a record file first", "record-file");
    let record;
    try {
      record = JSON.parse(await file.text());
    } catch {
      throw new FormError("record_unreadable", "this file is not a JSON record", "record-file");
    }
    const { intact, message } = await api.post("/api/records/verify", record);
    verdict.dataset.intact = String(intact);
    verdict.className = intact ? "notice" : "notice notice--error";
    verdict.textContent = `${file.name}: ${message}.`;
    verdict.hidden = false;
  });
  document.getElementById("record").hidden = false;
}

async function main() {
  const { me } = await startPage({ memberOnly: true });
  const match = CALL_PATH.exec(location.pathname);
  if (match) await showCall(me, match[1]);
  else await showList(me);
  pageReady();
}

runPage(main);
