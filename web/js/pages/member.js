// A member's public profile (/m/<id>): who they are, and whether they are online now.

import * as api from "../api.js";
import { avatar } from "../avatar.js";
import { el } from "../dom.js";
import { pageReady, runPage, startPage } from "../page.js";
import { statusDot, statusText } from "../presence.js";

const TIER_NAMES = { free: "Free host", upgraded: "Upgraded host" };

function memberIdFromPath() {
  return location.pathname.split("/")[2];
}

function showProfile(member) {
  document.title = `${member.display_name} · interKanect`;
  document.getElementById("member-avatar").replaceChildren(avatar(member, "xlarge"));
  document.getElementById("member-name").textContent = member.display_name;
  const headline = document.getElementById("member-headline");
  headline.textContent = member.headline;
  headline.hidden = !member.headline;
  const tier = document.getElementById("member-tier");
  tier.textContent = TIER_NAMES[member.tier] || member.tier;
  tier.dataset.tier = member.tier;
  document.getElementById("member-bio").textContent = member.bio || `${member.display_name} has not written a bio yet.`;
}

function showStatus(member, { me, presence }) {
  const status = document.getElementById("member-status");
  if (!presence) {
    const next = encodeURIComponent(location.pathname);
    status.replaceChildren(el("a", { id: "presence-login-link", href: `/login?next=${next}` },
      `Log in to see whether ${member.display_name} is online`));
    status.classList.add("hint");
    return;
  }
  status.replaceChildren(statusDot(member.id, "offline", "large"), statusText(member.id));
  presence.follow([member.id]);
  document.getElementById("own-profile-note").hidden = !(me && me.id === member.id);
}

async function main() {
  const page = await startPage();
  let member;
  try {
    member = (await api.get(`/api/members/${memberIdFromPath()}`)).member;
  } catch (error) {
    if (error.status !== 404) throw error;
    document.getElementById("member-missing").hidden = false;
    pageReady();
    return;
  }
  showProfile(member);
  showStatus(member, page);
  document.getElementById("member-profile").hidden = false;
  pageReady();
}

runPage(main);
