// The member's own account (/account): profile, payout email, avatar, tier and the upgrade
// subscription (subscribe on PayPal's page, see when it renews or ends, cancel).

import * as api from "../api.js";
import { avatar } from "../avatar.js";
import { followersText } from "../following.js";
import { FormError, handleForm, showStatus } from "../forms.js";
import { pageReady, runPage, startPage } from "../page.js";

const PROFILE_FIELDS = ["display_name", "headline", "bio", "payout_email"];
const PROFILE_ERRORS = { invalid_display_name: "display_name", invalid_headline: "headline",
  invalid_bio: "bio", invalid_email: "payout_email", password_required: "payout_password",
  wrong_password: "payout_password", too_many_attempts: "payout_password" };
// The gateway's limits (gateway/accounts.py); checked here only to spare a doomed upload.
const AVATAR_MAX_BYTES = 1024 * 1024;
const AVATAR_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];

const TIER_WORDS = {
  free: ["Free", "You can host free calls of up to 20 minutes, one at a time."],
  upgraded: ["Upgraded", "You can host paid or free calls of any length, several at once, and receive tips."],
};

function fillProfile(form, member) {
  for (const name of PROFILE_FIELDS) form.elements[name].value = member[name] || "";
  form.elements.payout_password.value = "";
  askPasswordIfPayoutChanges(form, member);
}

// A new payout email (or none) is sent with the current password: a stolen session alone
// must not redirect the earnings.
function askPasswordIfPayoutChanges(form, member) {
  const changing = form.elements.payout_email.value.trim() !== (member.payout_email || "");
  document.getElementById("payout-password").hidden = !changing;
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

const INTERVAL_WORDS = { DAY: "a day", WEEK: "a week", MONTH: "a month", YEAR: "a year" };
// What PayPal's return (or leaving its page) added to /account?upgrade=…
const RETURN_NOTES = {
  cancelled: "You left PayPal without subscribing; nothing was charged.",
  pending: "PayPal has not confirmed your subscription yet; reload this page in a moment.",
};

function dollars(cents) {
  return `$${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, "0")}`;
}

function priceText(item) {
  return `${dollars(item.price_cents)} ${INTERVAL_WORDS[item.interval] || ""}`.trim();
}

function dateText(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "long", timeStyle: "short" });
}

// One sentence on the subscription: renewing, or over with the paid period running on.
function subscriptionText(subscription, tier) {
  if (subscription.status === "ACTIVE") {
    const price = subscription.price_cents ? ` at ${priceText(subscription)}` : "";
    return `Your upgrade subscription renews on ${dateText(subscription.renews_at)}${price}.`;
  }
  const why = { CANCELLED: "cancelled", SUSPENDED: "suspended by PayPal", EXPIRED: "over" }[subscription.status];
  if (tier === "upgraded" && subscription.ends_at) {
    return `Your subscription is ${why}: you stay upgraded until ${dateText(subscription.ends_at)}.`;
  }
  return `Your subscription is ${why}${subscription.ends_at ? ` since ${dateText(subscription.ends_at)}` : ""}.`;
}

function showUpgrade(offer, note = "") {
  const { plan, tier, subscription } = offer;
  const status = document.getElementById("subscription-status");
  const text = subscription ? subscriptionText(subscription, tier) : note;
  status.textContent = text;
  status.hidden = !text;
  status.dataset.status = subscription ? subscription.status : "";
  status.dataset.endsAt = (subscription && subscription.ends_at) || "";
  const canUpgrade = tier === "free" && Boolean(plan);
  document.getElementById("upgrade-offer").hidden = !canUpgrade;
  if (plan) document.getElementById("upgrade-price").textContent = priceText(plan);
  const upgradeButton = document.getElementById("upgrade-button");
  upgradeButton.hidden = !canUpgrade;
  upgradeButton.textContent = plan ? `Upgrade for ${priceText(plan)}` : "Upgrade";
  document.getElementById("cancel-upgrade-button").hidden = !(subscription && subscription.status === "ACTIVE");
  document.getElementById("upgrade").hidden = !(canUpgrade || text || tier === "free");
  if (tier === "free" && !plan && !text) {
    status.textContent = "Upgrading by subscription is not open yet.";
    status.hidden = false;
  }
}

function showUpgradeError(error) {
  const message = document.getElementById("upgrade-error");
  message.textContent = error ? error.message.charAt(0).toUpperCase() + error.message.slice(1) + "." : "";
  message.dataset.errorCode = error ? error.code : "";
  message.hidden = !error;
}

// Run one button's request with the button disabled; API errors show under the tier.
async function busy(button, action) {
  button.disabled = true;
  showUpgradeError(null);
  try {
    await action();
  } catch (error) {
    if (!(error instanceof api.ApiError)) throw error;
    showUpgradeError(error);
  } finally {
    button.disabled = false;
  }
}

async function bindUpgrade(state) {
  const note = RETURN_NOTES[new URLSearchParams(location.search).get("upgrade")] || "";
  const refresh = async () => showUpgrade(await api.get("/api/me/upgrade"), note);
  await refresh();
  const upgradeButton = document.getElementById("upgrade-button");
  upgradeButton.addEventListener("click", () => busy(upgradeButton, async () => {
    // PayPal's consent page, in this tab: PayPal sends the member back to /account.
    location.assign((await api.post("/api/me/upgrade", {})).approve_url);
  }));
  const cancelButton = document.getElementById("cancel-upgrade-button");
  cancelButton.addEventListener("click", () => busy(cancelButton, async () => {
    const sure = "Cancel your upgrade subscription? You stay upgraded until the end of the paid period.";
    if (!window.confirm(sure)) return;
    state.member = (await api.post("/api/me/upgrade/cancel", {})).member;
    showMember(state.member);
    await refresh();
  }));
}

function showMember(member, avatarVersion = "") {
  document.getElementById("account-email").textContent = member.email;
  document.getElementById("public-profile-link").href = `/m/${member.id}`;
  document.getElementById("account-followers").textContent = followersText(member.followers || 0);
  document.getElementById("avatar-preview").replaceChildren(avatar(member, "large", avatarVersion));
  showPlan(member);
}

function bindProfile(state) {
  const form = document.getElementById("profile-form");
  fillProfile(form, state.member);
  form.elements.payout_email.addEventListener("input", () => askPasswordIfPayoutChanges(form, state.member));
  handleForm(form, async (values) => {
    showStatus(form, "");
    const changed = changes(values, state.member);
    if ("payout_email" in changed) changed.password = values.payout_password;
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
  }, { avatar_too_large: "avatar", avatar_type: "avatar", avatar_unreadable: "avatar",
    avatar_too_many_pixels: "avatar" });
}

async function main() {
  const { me } = await startPage({ memberOnly: true });
  document.getElementById("welcome").hidden = !new URLSearchParams(location.search).has("welcome");
  const state = { member: me };
  showMember(me);
  bindProfile(state);
  bindAvatar(state);
  await bindUpgrade(state);
  document.getElementById("account").hidden = false;
  pageReady();
}

runPage(main);
