// The directory (/): members by name, a search box, and live status dots for members.

import * as api from "../api.js";
import { avatar } from "../avatar.js";
import { el } from "../dom.js";
import { pageReady, runPage, startPage } from "../page.js";
import { statusDot } from "../presence.js";

// Long enough that typing a name sends one search, short enough to feel immediate.
const SEARCH_DELAY_MS = 250;

function memberCard(member, me, presence) {
  const picture = el("span", { class: "member-card__picture" }, avatar(member, "medium"));
  if (presence) picture.append(statusDot(member.id));
  const name = el("span", { class: "member-card__name" }, member.display_name,
    me && me.id === member.id ? el("span", { class: "you" }, " (you)") : null);
  const badge = member.tier === "upgraded" ? el("span", { class: "badge" }, "Upgraded") : null;
  return el("li", { class: "member-card", dataset: { memberCard: member.id } },
    el("a", { class: "member-card__link", href: `/m/${member.id}` }, picture,
      el("span", { class: "member-card__text" },
        el("span", { class: "member-card__title" }, name, badge),
        el("span", { class: "member-card__headline" }, member.headline || "No headline yet"))));
}

function describe(count, query) {
  if (count === 0) return query ? `No members match “${query}”.` : "No members yet.";
  const members = count === 1 ? "1 member" : `${count} members`;
  return query ? `${members} match “${query}”.` : `${members}.`;
}

class Directory {
  constructor({ me, presence }) {
    this.me = me;
    this.presence = presence;
    this.list = document.getElementById("directory");
    this.count = document.getElementById("directory-count");
    this.shown = [];            // ids of the members on screen, followed when logged in
    this.request = null;        // AbortController of the search in flight
  }

  async search(query) {
    this.request?.abort();
    this.request = new AbortController();
    const path = "/api/members" + (query ? `?q=${encodeURIComponent(query)}` : "");
    this.list.setAttribute("aria-busy", "true");
    try {
      const { members } = await api.get(path, { signal: this.request.signal });
      this.show(members, query);
    } catch (error) {
      if (error.name === "AbortError") return;
      this.count.textContent = error.message;
      this.count.classList.add("notice--error");
    } finally {
      this.list.setAttribute("aria-busy", "false");
    }
  }

  show(members, query) {
    this.list.replaceChildren(...members.map((member) => memberCard(member, this.me, this.presence)));
    this.count.classList.remove("notice--error");
    this.count.textContent = describe(members.length, query);
    this.follow(members.map((member) => member.id));
  }

  // Follow exactly the members on screen, so a long session does not pile up watches.
  follow(ids) {
    if (!this.presence) return;
    const now = new Set(ids);
    const gone = this.shown.filter((id) => !now.has(id));
    if (gone.length) this.presence.unfollow(gone);
    this.presence.follow(ids);
    this.shown = ids;
  }
}

function bindSearch(directory) {
  const form = document.getElementById("search-form");
  const input = document.getElementById("search");
  input.value = new URLSearchParams(location.search).get("q") || "";
  let timer = null;
  const run = () => {
    clearTimeout(timer);
    const query = input.value.trim();
    // Keep the search in the address, so back, reload and sharing show the same list.
    history.replaceState(null, "", query ? `/?q=${encodeURIComponent(query)}` : "/");
    return directory.search(query);
  };
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(run, SEARCH_DELAY_MS); });
  form.addEventListener("submit", (event) => { event.preventDefault(); run(); });
  return run;
}

async function main() {
  const page = await startPage();
  document.getElementById("presence-hint").hidden = Boolean(page.me);
  const directory = new Directory(page);
  await bindSearch(directory)();
  pageReady();
}

runPage(main);
