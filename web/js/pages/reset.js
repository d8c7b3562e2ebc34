// Password reset (/reset): ask for a one-time link by email, or, when the link brought a
// ?token=, choose the new password.

import * as api from "../api.js";
import { FormError, handleForm, sentence, showStatus } from "../forms.js";
import { pageReady, runPage, startPage } from "../page.js";

async function askForLink(form, { email }) {
  const answer = await api.post("/api/password-reset", { email });
  showStatus(form, sentence(answer?.message || "if an account has this email, a reset link is on its way"));
}

async function choosePassword(token, { password, password_confirm }) {
  if (password !== password_confirm) {
    throw new FormError("passwords_differ", "The two passwords differ; type the same one twice.", "password_confirm");
  }
  await api.post("/api/password-reset/confirm", { token, password });
  history.replaceState(null, "", "/reset");  // the token is spent; keep it out of history
  document.getElementById("reset-choose").hidden = true;
  document.getElementById("reset-done").hidden = false;
  document.getElementById("reset-done-heading").focus();
}

async function main() {
  // A reset ends every session, this page's too: stay here to say it worked rather than
  // follow the usual "session ended" trip to the login page.
  await startPage({ onSessionEnded: () => {} });
  const token = new URLSearchParams(location.search).get("token");
  const section = document.getElementById(token ? "reset-choose" : "reset-request");
  section.hidden = false;
  if (token) {
    handleForm(document.getElementById("choose-form"), (values) => choosePassword(token, values),
      { weak_password: "password", passwords_differ: "password_confirm" });
  } else {
    const form = document.getElementById("request-form");
    handleForm(form, (values) => askForLink(form, values), { invalid_email: "email" });
  }
  pageReady();
}

runPage(main);
