// The call page (/call/<id>), loaded on its own (a refresh, a link, a new tab): it joins the
// call with attach_call once its socket is open. Unless it is PayPal's popup coming back to
// the call page that opened it: then it tells that page and leaves the call to it.

import { CallPage } from "../callpage.js";
import { el } from "../dom.js";
import { pageReady, runPage, startPage } from "../page.js";
import { openerOfCall, reportReturn, returnPurpose } from "../paypal.js";

const RETURN_WORDS = {
  payment: {
    approved: ["Payment approved",
      "Your call resumes in your other window as soon as PayPal confirms the payment. This window then closes."],
    cancelled: ["Payment cancelled", "Nothing was paid. You can pay from your call window when you are ready."],
  },
  tip: {
    approved: ["Tip approved",
      "Thank you! Your call window says so as soon as PayPal confirms the tip. This window then closes."],
    cancelled: ["Tip cancelled", "Nothing was paid. You can tip from your call window whenever you like."],
  },
};

// PayPal's popup is back on our site: say what happened, offer the way back, open no socket.
function showPayPalReturn(opener, callId) {
  const purpose = returnPurpose(opener) === "tip" ? "tip" : "payment";
  const outcome = reportReturn(opener, callId);
  const [heading, words] = RETURN_WORDS[purpose][outcome];
  const back = el("button", { id: "paypal-return-back", type: "button", class: "button button--primary" },
    "Back to the call");
  back.addEventListener("click", () => {
    opener.focus();
    window.close();
  });
  document.title = `${heading} · interKanect`;
  document.getElementById("main").replaceChildren(
    el("section", { id: "paypal-return", class: "card paypal-return", dataset: { outcome, purpose } },
      el("h1", {}, heading), el("p", {}, words), el("div", { class: "form-actions" }, back)));
  document.querySelector(".skip-link")?.remove();
  pageReady();
}

async function main() {
  const callId = location.pathname.split("/")[2];
  const opener = openerOfCall(callId);
  if (opener) {
    showPayPalReturn(opener, callId);
    return;
  }
  const page = await startPage({ memberOnly: true, askNotifications: false });
  new CallPage(page, callId).start();
}

runPage(main);
