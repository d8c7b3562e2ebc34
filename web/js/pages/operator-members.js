// The operators' member search (/operator/members): find members by name or email, see their
// tier and payout email, set the tier. Only operators see it (the API refuses others anyway).

import * as api from "../api.js";
import { el } from "../dom.js";
import { sentence } from "../forms.js";
import { pageReady, runPage, startPage } from "../page.js";

const TIERS = [["free", "Free"], ["upgraded", "Upgraded"]];

function tierForm(member) {
  const selectId = `tier-${member.id}`;
  const select = el("select", { id: selectId, name: "tier" },
    ...TIERS.map(([value, text]) => el("option", { value, selected: value === member.tier }, text)));
  const note = el("span", { class: "tier-note", role: "status" });
  const button = el("button", { type: "submit", class: "button button--small" }, "Save tier");
  const form = el("form", { class: "inline-form tier-form", novalidate: true, dataset: { tier: member.tier } },
    el("label", { for: selectId, class: "visually-hidden" }, `Tier of ${member.name}`), select, button, note);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    note.textContent = "Saving…";
    delete note.dataset.errorCode;
    try {
      const row = await api.post(`/api/operator/members/${member.id}/tier`, { tier: select.value });
      form.dataset.tier = row.tier;
      note.textContent = `Saved: ${row.name} is ${row.tier}.`;
    } catch (error) {
      if (!(error instanceof api.ApiError)) throw error;
      note.textContent = sentence(error.message);
      note.dataset.errorCode = error.code;
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function memberRow(member) {
  return el("tr", { dataset: { memberId: member.id } },
    el("td", { "data-label": "Name", class: "wrap" }, el("a", { href: `/m/${member.id}` }, member.name),
      ...(member.operator ? [" ", el("span", { class: "badge" }, "Operator")] : [])),
    el("td", { "data-label": "Email", class: "wrap" }, member.email),
    el("td", { "data-label": "Payout email", class: "wrap" }, member.payout_email || "—"),
    el("td", { "data-label": "Tier" }, tierForm(member)));
}

async function search(q) {
  const { members } = await api.get(`/api/operator/members?q=${encodeURIComponent(q)}`);
  document.querySelector("#members-table tbody").replaceChildren(...members.map(memberRow));
  document.getElementById("member-count").textContent = members.length
    ? `${members.length} ${members.length === 1 ? "member" : "members"}${q ? ` matching “${q}”` : ""}.`
    : `No member matches “${q}”.`;
}

async function main() {
  const { me } = await startPage({ memberOnly: true });
  if (!me.operator) {
    document.getElementById("operators-only").hidden = false;
    pageReady();
    return;
  }
  const form = document.getElementById("member-search");
  const q = new URLSearchParams(location.search).get("q") || "";
  form.elements.q.value = q;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const query = form.elements.q.value.trim();
    history.replaceState(null, "", query ? `?q=${encodeURIComponent(query)}` : location.pathname);
    await search(query);
  });
  await search(q);
  document.getElementById("members").hidden = false;
  pageReady();
}

runPage(main);
