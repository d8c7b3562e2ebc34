// The operators' refund review queue (/operator/refunds): each request with its deadline,
// caller, host, amounts and reason; the call's log on demand; notes from interviewing the
// member; approve or deny with a note. Only operators see it (the API refuses others anyway).

import * as api from "../api.js";
import { factsList, logList, namesOf } from "../calllog.js";
import { clockText, qualityChart } from "../qualitychart.js";
import { el } from "../dom.js";
import { handleForm, sentence } from "../forms.js";
import { moneyText } from "../money.js";
import { pageReady, runPage, startPage } from "../page.js";
import { STATE_NAMES, amountWords } from "../refunds.js";
import { timeElement, viewerZone } from "../times.js";

const calls = new Map();   // call id → the call's record, once an operator opened its log

function row(term, ...value) {
  return [el("dt", {}, term), el("dd", {}, ...value)];
}

function deadlineLine(refund) {
  const overdue = refund.state === "open" && Date.parse(refund.deadline) < Date.now();
  return [timeElement(refund.deadline, "long", { class: "refund-item__deadline" }),
    overdue ? el("strong", { class: "refund-item__overdue" }, " (overdue)") : null];
}

function formError(id) {
  return el("p", { class: "form-error", id, "data-form-error": true, role: "alert", hidden: true });
}

function formStatus() {
  return el("p", { class: "form-status", "data-form-status": true, role: "status", hidden: true });
}

// The call's log: loaded the first time it is opened, kept for later redraws.
function logPanel(refund) {
  const id = `log-${refund.id}`;
  const panel = el("div", { id, class: "refund-item__log", hidden: true });
  const button = el("button", { type: "button", class: "button button--small refund-item__log-button",
    "aria-expanded": "false", "aria-controls": id }, "Show the call's log");
  const show = async () => {
    if (!calls.has(refund.call_id)) {
      button.disabled = true;
      try {
        calls.set(refund.call_id, (await api.get(`/api/calls/${refund.call_id}`)).call);
      } catch (error) {
        if (!(error instanceof api.ApiError)) throw error;
        panel.replaceChildren(el("p", { class: "notice notice--error", role: "alert" }, sentence(error.message)));
        panel.hidden = false;
        return;
      } finally {
        button.disabled = false;
      }
    }
    const call = calls.get(refund.call_id);
    const names = namesOf(call, "");
    const moment = refund.moment_s ?? null;
    panel.replaceChildren(factsList(call, names),
      el("h4", {}, "Connection quality"),
      moment !== null ? el("p", { class: "refund-moment" },
        `The caller points at ${clockText(moment)} (marked on the chart).`) : null,
      qualityChart(call, names, { moment }),
      el("h4", {}, "Log"), logList(call, names));
    panel.hidden = false;
  };
  button.addEventListener("click", async () => {
    const open = button.getAttribute("aria-expanded") === "true";
    if (open) {
      panel.hidden = true;
    } else {
      await show();
    }
    button.setAttribute("aria-expanded", String(!open && !panel.hidden));
    button.textContent = !open && !panel.hidden ? "Hide the call's log" : "Show the call's log";
  });
  return [button, panel, () => (calls.has(refund.call_id) ? show().then(() => {
    button.setAttribute("aria-expanded", "true");
    button.textContent = "Hide the call's log";
  }) : null)];
}

function notesPart(refund, replace) {
  const notes = refund.notes || [];
  const list = notes.length ? el("ol", { class: "notes" }, ...notes.map((note) => el("li", { class: "note" },
    el("span", { class: "hint" }, `${note.by.name}, `, timeElement(note.at), ": "),
    el("span", { class: "note-text" }, note.text)))) : el("p", { class: "hint" }, "No notes yet.");
  const fieldId = `note-${refund.id}`;
  const form = el("form", { class: "form note-form", novalidate: true },
    el("div", { class: "field" },
      el("label", { for: fieldId }, "Add a note"),
      el("p", { class: "field-hint", id: `${fieldId}-hint` }, "What you learned, e.g. from talking to the host. Only operators see notes."),
      el("textarea", { id: fieldId, name: "text", rows: "3", maxlength: "2000",
        "aria-describedby": `${fieldId}-hint ${fieldId}-error` })),
    formError(`${fieldId}-error`), formStatus(),
    el("div", { class: "form-actions" }, el("button", { type: "submit", class: "button" }, "Add note")));
  handleForm(form, async ({ text }) => {
    replace(await api.post(`/api/refunds/${refund.id}/notes`, { text }), `#${fieldId}`, "Note added.");
  });
  return el("section", { class: "refund-item__notes", "aria-label": `Notes on ${refund.caller.name}'s request` },
    el("h3", {}, "Notes"), list, form);
}

// Where each payment's refund stands at PayPal, while an approval is carried out.
function paypalWords(part) {
  const failed = part.failed_refunds.length;
  const tries = failed === 1 ? "once" : `${failed} times`;
  if (part.needs_operator) {
    // Why, in PayPal's words: the last refund's status (FAILED, CANCELLED, REFUSED <issue>).
    const last = part.failed_refunds[failed - 1];
    const why = last ? ` (last: ${last.status})` : "";
    return `PayPal failed this refund ${tries}${why}: look at the payment on PayPal, then ask again.`;
  }
  if (part.done) return "Refunded.";
  if (part.status === "PENDING") return "PayPal holds the refund as pending (e.g. an eCheck); we follow it.";
  if (part.error) return `Not done yet, tried again automatically: ${part.error}`;
  return failed ? `PayPal failed it ${tries}; a new refund is on its way.` : "On its way.";
}

function progressPart(refund, replace) {
  const parts = refund.refunds || [];
  const list = el("ul", { class: "refund-item__progress" }, ...parts.map((part) => el("li",
    { dataset: { captureId: part.capture_id, needsOperator: String(part.needs_operator) } },
    `${moneyText(part.refund_cents)} of payment ${part.capture_id}: `, paypalWords(part))));
  if (!refund.needs_operator) return list;
  const form = el("form", { class: "form retry-form", novalidate: true },
    formError(`retry-${refund.id}-error`), formStatus(),
    el("div", { class: "form-actions" }, el("button", { type: "submit", class: "button button--primary" },
      "Ask PayPal again")));
  handleForm(form, async () => {
    replace(await api.post(`/api/refunds/${refund.id}/retry`, {}), ".refund-item__heading", null);
  });
  return el("div", {}, list, form);
}

function decisionPart(refund, replace) {
  if (refund.state !== "open") {
    return el("section", { class: "refund-item__decision" }, el("h3", {}, "Decision"),
      el("p", {}, `${STATE_NAMES[refund.state]}`, refund.decided_by ? ` by ${refund.decided_by.name}` : "",
        ...(refund.decided_at ? [", ", timeElement(refund.decided_at)] : []), "."),
      refund.decision_note ? el("p", { class: "note-text" }, refund.decision_note) : null,
      refund.state === "approved" ? progressPart(refund, replace) : null);
  }
  const id = refund.id;
  const radio = (value, text) => el("label", {}, el("input", { type: "radio", name: "decision", value }), text);
  const form = el("form", { class: "form decision-form", novalidate: true },
    el("fieldset", { class: "radio-row" }, el("legend", {}, "Decision"),
      radio("approve", `Approve: refund ${amountWords(refund)}`), radio("deny", "Deny")),
    el("div", { class: "field" },
      el("label", { for: `decision-note-${id}` }, "Note to the caller and host"),
      el("textarea", { id: `decision-note-${id}`, name: "note", rows: "2", maxlength: "2000",
        "aria-describedby": `decision-${id}-error` })),
    formError(`decision-${id}-error`), formStatus(),
    el("div", { class: "form-actions" }, el("button", { type: "submit", class: "button button--primary" },
      "Record decision")));
  handleForm(form, async ({ decision, note }) => {
    replace(await api.post(`/api/refunds/${id}/decision`, { decision: decision || "", note }),
      ".refund-item__heading", null);
  });
  return el("section", { class: "refund-item__decision" }, el("h3", {}, "Decide"), form);
}

function refundItem(refund) {
  const item = el("li", { class: "card refund-item", dataset: { refundId: refund.id, callId: refund.call_id,
    state: refund.state } });
  // Redraw the item from the API's new view, keeping the log open and the focus where it was.
  const replace = async (view, focusSelector, status) => {
    const next = refundItem(view);
    item.replaceWith(next);
    await next.reopenLog();
    if (status) {
      const note = next.querySelector(".note-form [data-form-status]");
      note.textContent = status;
      note.hidden = false;
    }
    const target = next.querySelector(focusSelector);
    if (target) {
      if (!target.matches("textarea, button, input")) target.tabIndex = -1;
      target.focus();
    }
  };
  const [logButton, logDiv, reopenLog] = logPanel(refund);
  item.reopenLog = async () => reopenLog();
  item.append(
    el("div", { class: "refund-item__head" },
      el("h2", { class: "refund-item__heading" }, `${refund.caller.name} asks ${refund.host.name}'s call back`),
      el("span", { class: "badge refund-item__state", dataset: { state: refund.state } }, STATE_NAMES[refund.state])),
    el("dl", { class: "facts" },
      ...row(refund.state === "open" ? "Decide by" : "Deadline was", ...deadlineLine(refund)),
      ...row("Requested", timeElement(refund.requested_at)),
      ...row("Caller", refund.caller.name),
      ...row("Host", refund.host.name),
      ...row("Paid", moneyText(refund.paid_cents)),
      ...row("Refund if approved", refund.refund_cents === null ? "—" : moneyText(refund.refund_cents)),
      ...row("Reason", el("span", { class: "refund-reason" }, refund.reason))),
    el("div", {}, logButton, logDiv),
    el("div", { class: "refund-item__parts" }, notesPart(refund, replace), decisionPart(refund, replace)));
  return item;
}

async function showQueue(state) {
  const queue = document.getElementById("refund-queue");
  queue.setAttribute("aria-busy", "true");
  const { refunds } = await api.get(`/api/refunds?state=${encodeURIComponent(state)}`);
  queue.replaceChildren(...refunds.map(refundItem));
  queue.removeAttribute("aria-busy");
  const what = document.querySelector(`#state option[value="${state}"]`).textContent.toLowerCase();
  document.getElementById("refund-count").textContent = refunds.length
    ? `${refunds.length} ${refunds.length === 1 ? "request" : "requests"} (${what}).` : `No ${what}.`;
}

async function main() {
  const { me } = await startPage({ memberOnly: true });
  if (!me.operator) {
    document.getElementById("operators-only").hidden = false;
    pageReady();
    return;
  }
  document.getElementById("refunds-zone").textContent = viewerZone();
  const filter = document.getElementById("refund-filter");
  const state = new URLSearchParams(location.search).get("state") || "open";
  filter.elements.state.value = state;
  filter.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = filter.elements.state.value;
    history.replaceState(null, "", chosen === "open" ? location.pathname : `?state=${chosen}`);
    await showQueue(chosen);
  });
  await showQueue(filter.elements.state.value || "open");
  document.getElementById("refunds").hidden = false;
  pageReady();
}

runPage(main);
