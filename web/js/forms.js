// Forms: submit without reloading, show the API's error message next to the field it is
// about (or above the buttons), and keep the form usable from the keyboard throughout.

import { ApiError } from "./api.js";

/** An error the page finds itself before asking the server (a mismatched confirmation). */
export class FormError extends Error {
  constructor(code, message, field = null) {
    super(message);
    this.code = code;
    this.field = field;
  }
}

/** The form's fields as an object of trimmed strings (passwords untouched). */
export function valuesOf(form) {
  const values = {};
  for (const [name, value] of new FormData(form)) {
    if (typeof value !== "string") continue;
    values[name] = form.elements[name].type === "password" ? value : value.trim();
  }
  return values;
}

/**
 * Run `submit(values)` on submit. `fields` maps an error code to the field it is about;
 * other errors show at the form's [data-form-error] element.
 */
export function handleForm(form, submit, fields = {}) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (form.getAttribute("aria-busy") === "true") return;
    clearErrors(form);
    setBusy(form, true);
    try {
      await submit(valuesOf(form));
    } catch (error) {
      if (!(error instanceof ApiError || error instanceof FormError)) throw error;
      showError(form, error, error.field || fields[error.code]);
    } finally {
      setBusy(form, false);
    }
  });
}

function setBusy(form, busy) {
  form.setAttribute("aria-busy", String(busy));
  for (const button of form.querySelectorAll("button[type=submit]")) button.disabled = busy;
}

export function clearErrors(form) {
  for (const field of form.querySelectorAll("[aria-invalid]")) field.removeAttribute("aria-invalid");
  for (const message of form.querySelectorAll(".field-error, [data-form-error]")) {
    message.textContent = "";
    message.hidden = true;
    delete message.dataset.errorCode;
  }
}

export function showError(form, error, fieldName) {
  const field = fieldName && form.elements[fieldName];
  const message = field ? form.querySelector(`#${fieldName}-error`) : form.querySelector("[data-form-error]");
  message.textContent = sentence(error.message);
  message.dataset.errorCode = error.code;
  message.hidden = false;
  if (field) {
    field.setAttribute("aria-invalid", "true");
    field.focus();
  }
}

/** Show a success or progress note in the form's [data-form-status] element. */
export function showStatus(form, text) {
  const status = form.querySelector("[data-form-status]");
  status.textContent = text;
  status.hidden = !text;
}

// The API's messages are lower-case fragments ("wrong email or password"); as sentences
// they read better on a page.
export function sentence(text) {
  const trimmed = String(text || "something went wrong").trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : capital + ".";
}

/**
 * A same-site path from ?next=, never another site (an open redirect). Resolved the way the
 * browser will resolve it (tabs and line breaks dropped, backslashes read as slashes, so
 * "/\t/evil.example" is "//evil.example") and kept only when its origin is ours.
 */
export function nextPath(fallback = "/") {
  const next = new URLSearchParams(location.search).get("next");
  if (!next || !next.startsWith("/")) return fallback;
  let resolved;
  try {
    resolved = new URL(next, location.origin);
  } catch {
    return fallback;
  }
  return resolved.origin === location.origin ? resolved.pathname + resolved.search + resolved.hash : fallback;
}
