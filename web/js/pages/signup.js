// Sign up (/signup): a new member is logged in at once and led to complete their profile.
// An email that has an account gets the same answer without a session (its owner is mailed
// instead): the page then says to check the inbox.

import * as api from "../api.js";
import { handleForm, nextPath } from "../forms.js";
import { pageReady, runPage, startPage } from "../page.js";

const FIELDS = { invalid_display_name: "display_name", invalid_email: "email", weak_password: "password" };

function showCheckInbox(email) {
  document.getElementById("signup-check-inbox-email").textContent = email;
  document.getElementById("signup").hidden = true;
  document.getElementById("signup-check-inbox").hidden = false;
  document.getElementById("signup-check-inbox-heading").focus();
}

async function signUp({ display_name, email, password }) {
  const { member } = await api.post("/api/signup", { display_name, email, password });
  if (member) location.assign(nextPath("/account?welcome=1"));
  else showCheckInbox(email);
}

async function main() {
  await startPage();
  const next = new URLSearchParams(location.search).get("next");
  if (next) document.getElementById("login-link").search = `?next=${encodeURIComponent(nextPath())}`;
  handleForm(document.getElementById("signup-form"), signUp, FIELDS);
  pageReady();
}

runPage(main);
