// Sign up (/signup): a new member is logged in at once and led to complete their profile.

import * as api from "../api.js";
import { handleForm, nextPath } from "../forms.js";
import { pageReady, runPage, startPage } from "../page.js";

const FIELDS = { invalid_display_name: "display_name", invalid_email: "email", email_taken: "email",
  weak_password: "password" };

async function signUp({ display_name, email, password }) {
  await api.post("/api/signup", { display_name, email, password });
  location.assign(nextPath("/account?welcome=1"));
}

async function main() {
  await startPage();
  const next = new URLSearchParams(location.search).get("next");
  if (next) document.getElementById("login-link").search = `?next=${encodeURIComponent(nextPath())}`;
  handleForm(document.getElementById("signup-form"), signUp, FIELDS);
  pageReady();
}

runPage(main);
