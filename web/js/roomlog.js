// The call page's log panel: the call's record as both sides see it (GET /api/calls/<id>:
// joins, drops, time connected, each round's terms with their fingerprint, payments), read
// again after every call_state change. The words are the history pages' (js/calllog.js).

import * as api from "./api.js";
import { logList, namesOf } from "./calllog.js";
import { lengthWords } from "./clock.js";
import { priceText } from "./terms.js";

export class RoomLog {
  constructor(callId, myName) {
    this.callId = callId;
    this.myName = myName;
    this.loading = null;     // the read in flight
    this.again = false;      // another change came meanwhile: read once more after it
  }

  /** Read the log again: at most one read at a time, and one more if asked meanwhile. */
  refresh() {
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    this.loading = this.load().finally(() => {
      this.loading = null;
      if (this.again) {
        this.again = false;
        this.refresh();
      }
    });
    return this.loading;
  }

  async load() {
    try {
      const { call } = await api.get(`/api/calls/${this.callId}`);
      this.render(call);
    } catch (error) {
      if (error.status !== 404) console.warn("interKanect: the call log did not load", error);
      document.getElementById("calllog-summary").textContent = "The call's log is not available right now.";
    }
  }

  render(call) {
    const me = call.role;
    const other = me === "host" ? "caller" : "host";
    const list = logList(call, namesOf(call, this.myName));
    list.id = "calllog-list";
    list.classList.add("calllog__list");
    list.setAttribute("aria-label", "What happened in this call");
    list.dataset.count = String((call.log || []).length);
    document.getElementById("calllog-list").replaceWith(list);
    const connected = call.connected_s || {};
    const parts = [`Connected: you ${lengthWords(connected[me] || 0)}, ${call.with.name} ${lengthWords(connected[other] || 0)}.`];
    if (call.paid_cents) parts.push(`Paid: ${priceText(call.paid_cents)}.`);
    const tips = (call.tips || []).reduce((sum, tip) => sum + tip.amount_cents, 0);
    if (tips) parts.push(`Tips: ${priceText(tips)}.`);
    document.getElementById("calllog-summary").textContent = parts.join(" ");
  }
}
