// The member's own account (/account): profile, payout email, avatar and tier.

import * as api from "../api.js";
import { avatar } from "../avatar.js";
import { FormError, handleForm, showStatus } from "../forms.js";
import { pageReady, runPage, startPage } from "../page.js";

const PROFILE_FIELDS = ["display_name", "headline", "bio", "payout_email"];
const PROFILE_ERRORS = { invalid_display_name: "display_name", invalid_headline: "headline",
  invalid_bio: "bio", invalid_email: "payout_email" };
// The gateway's limits (gateway/accounts.py); checked here only to spare a doomed upload.
const AVATAR_MAX_BYTES = 1024 * 1024;
const AVATAR_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];

const TIER_WORDS = {
  free: ["Free", "You can host free calls of up to 20 minutes, one at a time."],
  upgraded: ["Upgraded", "You can host paid or free calls of any length, several at once, and receive tips."],
};

function fillProfile(form, member) {
  for (const name of PROFILE_FIELDS) form.elements[name].value = member[name] || "";
}

// Send only what changed: an untouched field must not fail on a rule it already broke.
function changes(values, member) {
  const changed = {};
  for (const name of PROFILE_FIELDS) {
    if (values[name] !== (member[name] || "")) changed[name] = values[name];
  }
  return changed;
}

function showPlan(member) {
  const [name, explanation] = TIER_WORDS[member.tier] || [member.tier, ""];
  const tier = document.getElementById("tier");
  tier.textContent = name;
  tier.dataset.tier = member.tier;
  document.getElementById("tier-explanation").textContent = explanation;
  const charge = document.getElementById("can-charge");
  charge.dataset.canCharge = String(member.can_charge);
  charge.textContent = member.can_charge ? "You can host paid calls."
    : member.tier === "upgraded" ? "Add a PayPal payout email to host paid calls and receive tips."
      : "Paid calls and tips come with the upgraded tier and a PayPal payout email.";
}

function showMember(member, avatarVersion = "") {
  document.getElementById("account-email").textContent = member.email;
  document.getElementById("public-profile-link").href = `/m/${member.id}`;
  document.getElementById("avatar-preview").replaceChildren(avatar(member, "large", avatarVersion));
  showPlan(member);
}

function bindProfile(state) {
  const form = document.getElementById("profile-form");
  fillProfile(form, state.member);
  handleForm(form, async (values) => {
    showStatus(form, "");
    const changed = changes(values, state.member);
    if (Object.keys(changed).length) state.member = (await api.patch("/api/me", changed)).member;
    fillProfile(form, state.member);
    showMember(state.member);
    showStatus(form, "Profile saved.");
  }, PROFILE_ERRORS);
}

function checkAvatar(file) {
  if (!file) throw new FormError("no_file", "Choose an image first.", "avatar");
  if (file.type && !AVATAR_TYPES.includes(file.type)) {
    throw new FormError("avatar_type", "An avatar is a PNG, JPEG, GIF or WebP image.", "avatar");
  }
  if (file.size > AVATAR_MAX_BYTES) {
    throw new FormError("avatar_too_large", "An avatar is at most 1 MiB; choose a smaller image.", "avatar");
  }
}

function bindAvatar(state) {
  const form = document.getElementById("avatar-form");
  handleForm(form, async () => {
    showStatus(form, "");
    const file = form.elements.avatar.files[0];
    checkAvatar(file);
    await api.putBytes("/api/me/avatar", file);
    state.member = { ...state.member, has_avatar: true };
    showMember(state.member, String(Date.now()));
    form.reset();
    showStatus(form, "Avatar updated.");
  }, { avatar_too_large: "avatar", avatar_type: "avatar" });
}

async function main() {
  const { me } = await startPage({ memberOnly: true });
  document.getElementById("welcome").hidden = !new URLSearchParams(location.search).has("welcome");
  const state = { member: me };
  showMember(me);
  bindProfile(state);
  bindAvatar(state);
  document.getElementById("account").hidden = false;
  pageReady();
}

runPage(main);
