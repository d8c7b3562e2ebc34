// A member's public profile (/m/<id>): who they are, and whether they are online now.

import * as api from "../api.js";
import { avatar } from "../avatar.js";
import { el } from "../dom.js";
import { sentence } from "../forms.js";
import { bindFollowButton } from "../following.js";
import { openCallHere } from "../handoff.js";
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

// The Call button: live while the member is online (or in a call: an upgraded host takes
// several at once, and the server says "busy" when they cannot) and is not the viewer.
function bindCallButton(member, { me, live, presence }) {
  const button = document.getElementById("call-button");
  const note = document.getElementById("call-note");
  const error = document.getElementById("call-error");
  if (!live) {
    const login = `/login?next=${encodeURIComponent(location.pathname)}`;
    note.replaceChildren(el("a", { id: "call-login-link", href: login }, `Log in to call ${member.display_name}`));
    return;
  }
  if (me.id === member.id) {
    document.getElementById("call-actions").hidden = true;
    return;
  }
  let calling = false;
  let status = "offline";
  const show = () => {
    const reachable = (status === "online" || status === "in_call") && live.state === "open";
    button.disabled = calling || !reachable;
    button.textContent = calling ? "Calling…" : "Call";
    if (calling) return;
    note.textContent = !reachable && live.state !== "open" ? "Connecting…"
      : status === "online" ? `${member.display_name} is online now.`
        : status === "in_call" ? `${member.display_name} is in a call and may be busy.`
          : `${member.display_name} is offline. You can call when their dot turns green.`;
  };
  presence.onChange(member.id, (known) => {
    status = known.live ? known.status : "offline";
    show();
  });
  live.on("state", show);
  button.addEventListener("click", async () => {
    error.hidden = true;
    calling = true;
    show();
    try {
      const ringing = await live.request({ type: "call", member_id: member.id },
        { call_state: (state) => state.role === "caller" && state.host.id === member.id && state.state === "ringing" });
      // Not a reload: this page's socket is the caller's side of the call while it rings.
      openCallHere({ me, live }, ringing.call_id, ringing);
    } catch (refused) {
      calling = false;
      error.textContent = sentence(refused.message);
      error.dataset.errorCode = refused.code;
      error.hidden = false;
      show();
    }
  });
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
  bindCallButton(member, page);
  bindFollowButton(member, page);
  document.getElementById("member-profile").hidden = false;
  pageReady();
}

runPage(main);
