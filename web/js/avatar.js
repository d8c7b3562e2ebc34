// Avatars: the member's uploaded image, or their initials on a colour of their own.

import { el } from "./dom.js";

export function initials(name) {
  const words = String(name || "?").trim().split(/\s+/).filter(Boolean);
  const letters = words.slice(0, 2).map((word) => Array.from(word)[0]);
  return (letters.join("") || "?").toUpperCase();
}

// The same member gets the same colour on every page and every visit.
export function hueOf(memberId) {
  let hash = 0;
  for (const char of memberId) hash = (hash * 31 + char.charCodeAt(0)) % 360;
  return hash;
}

function initialsBox(member, size) {
  const box = el("span", { class: `avatar avatar--${size} avatar--initials`, "aria-hidden": "true" },
    initials(member.display_name));
  box.style.setProperty("--avatar-hue", hueOf(member.id));
  return box;
}

/** `version` busts the browser's cache after an upload. Decorative: the name is beside it. */
export function avatar(member, size = "medium", version = "") {
  if (!member.has_avatar) return initialsBox(member, size);
  const src = `/avatars/${member.id}` + (version ? `?v=${version}` : "");
  const image = el("img", { src, alt: "", loading: "lazy", decoding: "async" });
  const box = el("span", { class: `avatar avatar--${size}` }, image);
  image.addEventListener("error", () => box.replaceWith(initialsBox(member, size)), { once: true });
  return box;
}
