// The JSON API as the pages use it: every call sends the XSRF token and turns an
// {error: {code, message}} answer into a thrown ApiError the forms can show.

import { noteServerDate } from "./clock.js";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Tornado sets `_xsrf` on every page load and checks it against the X-XSRFToken header.
function xsrfToken() {
  const cookie = document.cookie.split("; ").find((part) => part.startsWith("_xsrf="));
  return cookie ? decodeURIComponent(cookie.slice("_xsrf=".length)) : "";
}

async function errorOf(response) {
  try {
    const { error } = await response.json();
    if (error && error.code) return new ApiError(response.status, error.code, error.message);
  } catch {
    // Not our JSON (a proxy's error page, say): fall through to a generic message.
  }
  return new ApiError(response.status, "http_" + response.status,
    `the server answered ${response.status}; try again in a moment`);
}

async function call(method, path, { json, body, contentType, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-XSRFToken"] = xsrfToken();
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (contentType) {
    headers["Content-Type"] = contentType;
  }
  let response;
  const sentAt = Date.now();
  try {
    response = await fetch(path, { method, headers, body, signal, credentials: "same-origin" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network", "cannot reach interKanect; check your connection and try again");
  }
  // Call deadlines are the server's time: every answer tells us how far our clock is off.
  noteServerDate(response.headers.get("Date"), sentAt, Date.now());
  if (!response.ok) throw await errorOf(response);
  return isJson(response) ? response.json() : null;  // 204s have no body
}

function isJson(response) {
  return (response.headers.get("Content-Type") || "").includes("application/json");
}

export const get = (path, options) => call("GET", path, options);
export const post = (path, json) => call("POST", path, { json });
export const patch = (path, json) => call("PATCH", path, { json });
export const del = (path) => call("DELETE", path);
export const putBytes = (path, blob) => call("PUT", path, { body: blob, contentType: blob.type });

/** The logged-in member's own profile, or null for a visitor. */
export async function me() {
  try {
    return (await get("/api/me")).member;
  } catch (error) {
    if (error.status === 401) return null;
    throw error;
  }
}
