// Followers: the Follow / Following button and the count on a member's page, and on every page
// of a logged-in member the note that someone they follow is online again (`followed_online`):
// a toast linking to their page, and a system notification when the member allowed them.

import * as api from "./api.js";
import { el } from "./dom.js";
import { sentence } from "./forms.js";
import { toast, toastRegion } from "./toasts.js";

export function followersText(count) {
  return count === 1 ? "1 follower" : `${count.toLocaleString("en-US")} followers`;
}

/** Every page of a logged-in member: show each `followed_online` frame. */
export function showFollowedOnline(live) {
  toastRegion();  // there before the first note, so screen readers read what comes into it
  live.on("followed_online", (frame) => {
    const name = frame.name || "A member you follow";
    const link = el("a", { href: `/m/${frame.member_id}`, class: "toast__link" }, name);
    toast(el("span", {}, link, " is online now."),
      { dataset: { toast: "followed-online", memberId: frame.member_id } });
    notify(frame, name);
  });
}

function notify(frame, name) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  try {
    const notification = new Notification(`${name} is online on interKanect`, {
      body: "Someone you follow is online now. Open their page to call them.", tag: `followed-${frame.member_id}`,
    });
    notification.onclick = () => {
      window.focus();
      location.assign(`/m/${frame.member_id}`);
      notification.close();
    };
  } catch (error) {
    console.warn("interKanect: cannot show a notification", error);  // e.g. a browser that wants a service worker
  }
}

/**
 * The member page's follow control: the count for everyone; for a logged-in visitor other than
 * the member, a Follow / Following button (Following unfollows on click). Following may ask,
 * on that click, to allow notifications, so the news reaches a tab in the background.
 */
export function bindFollowButton(member, { me }) {
  const count = document.getElementById("member-followers");
  const button = document.getElementById("follow-button");
  const error = document.getElementById("follow-error");
  let followers = member.followers || 0;
  let following = Boolean(member.following);
  const show = () => {
    count.textContent = followersText(followers);
    count.dataset.count = String(followers);
    button.textContent = following ? "Following" : "Follow";
    button.setAttribute("aria-pressed", String(following));
    button.dataset.following = String(following);
    button.title = following ? `Stop following ${member.display_name}`
      : `Be told when ${member.display_name} comes online`;
  };
  show();
  count.hidden = false;
  if (!me || me.id === member.id) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    error.hidden = true;
    button.disabled = true;
    if (!following && "Notification" in window && Notification.permission === "default") {
      Notification.requestPermission().catch(() => {});  // on this click, a user gesture; not waited for
    }
    try {
      const answer = following ? await api.del(`/api/members/${member.id}/follow`)
        : await api.post(`/api/members/${member.id}/follow`);
      followers = answer.followers;
      following = answer.following;
      show();
    } catch (refused) {
      error.textContent = sentence(refused.message);
      error.dataset.errorCode = refused.code || "";
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
}
