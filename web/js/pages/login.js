// Log in (/login): email and password, then back to where the member was going.

import * as api from "../api.js";
import { FormError, handleForm, nextPath } from "../forms.js";
import { pageReady, runPage, startPage } from "../page.js";

async function logIn({ email, password }) {
  // An empty password would still count as a failed attempt towards the slow-down.
  if (!password) throw new FormError("missing_password", "Enter your password.", "password");
  await api.post("/api/login", { email, password });
  location.assign(nextPath("/"));
}

async function main() {
  const { me } = await startPage();
  if (me) {
    const note = document.getElementById("logged-in-note");
    note.querySelector("[data-name]").textContent = me.display_name;
    note.hidden = false;
  }
  const next = new URLSearchParams(location.search).get("next");
  if (next) document.getElementById("signup-link").search = `?next=${encodeURIComponent(nextPath())}`;
  handleForm(document.getElementById("login-form"), logIn, { invalid_email: "email" });
  pageReady();
}

runPage(main);
