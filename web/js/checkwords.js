// Encryption check words: both sides hash the two DTLS certificate fingerprints of their
// connection (the a=fingerprint lines of the local and the remote SDP, sorted, so both compute
// the same input) with SHA-256 and read the first bytes as PGP words. Someone relaying the
// signaling who swapped the fingerprints to sit between the two would make the words differ,
// which the two people hear when they read them aloud.
// Each side also tells the other, over the `checkwords` data channel, which fingerprints it
// sees; a side whose view does not mirror ours is shown as a loud warning. (That message travels
// on the very connection it checks, so a careful attacker could rewrite it: the words read aloud
// are the real check.)

import { EVEN_WORDS, ODD_WORDS } from "./pgpwords.js";

export const WORD_COUNT = 4;

/** The certificate fingerprints of an SDP ("sha-256 AB:CD:…"), normalised and sorted. */
export function fingerprints(sdp) {
  const lines = (sdp || "").match(/^a=fingerprint:\S+ [0-9A-Fa-f:]+/gm) || [];
  const found = lines.map((line) => {
    const [algorithm, hex] = line.slice("a=fingerprint:".length).split(" ");
    return `${algorithm.toLowerCase()} ${hex.toUpperCase()}`;
  });
  return [...new Set(found)].sort();
}

/** The words for one connection, the same on both of its sides. */
export async function checkWords(localFingerprints, remoteFingerprints) {
  const input = [localFingerprints.join(","), remoteFingerprints.join(",")].sort().join("\n");
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(input)));
  return Array.from(digest.slice(0, WORD_COUNT), (byte, i) => (i % 2 === 0 ? EVEN_WORDS : ODD_WORDS)[byte]);
}

function same(a, b) {
  return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((value, i) => value === b[i]);
}

export class CheckWords {
  constructor() {
    this.section = document.getElementById("checkwords");
    this.channel = null;
    this.mine = null;        // {local, remote}: the fingerprints this side's connection has
    this.theirs = null;      // what the other side says it has
    this.generation = 0;
  }

  /** The checkwords channel of a new connection (null: gone): the words wait for it to come up. */
  attach(channel) {
    this.channel = channel;
    this.mine = null;
    this.theirs = null;
    this.generation += 1;
    if (!channel) return;
    channel.onopen = () => { if (channel === this.channel) this.tell(); };
    channel.onmessage = (event) => { if (channel === this.channel) this.heard(event.data); };
  }

  /** The connection came up: `local` and `remote` are its two SDPs. */
  async secured({ local, remote }) {
    const generation = this.generation;
    const mine = { local: fingerprints(local), remote: fingerprints(remote) };
    if (!mine.local.length || !mine.remote.length) return;
    const words = await checkWords(mine.local, mine.remote);
    if (generation !== this.generation) return;
    this.mine = mine;
    this.show(words);
    this.tell();
    this.compare();
  }

  tell() {
    if (!this.mine || this.channel?.readyState !== "open") return;
    this.channel.send(JSON.stringify({ t: "fingerprints", local: this.mine.local, remote: this.mine.remote }));
  }

  heard(data) {
    try {
      const frame = JSON.parse(data);
      if (frame.t === "fingerprints") this.theirs = { local: frame.local, remote: frame.remote };
    } catch {
      return;
    }
    this.compare();
  }

  // Their local certificate must be the remote one we see, and the other way round.
  compare() {
    if (!this.mine || !this.theirs) return;
    const ok = same(this.theirs.local, this.mine.remote) && same(this.theirs.remote, this.mine.local);
    this.section.dataset.state = ok ? "match" : "mismatch";
    const warning = document.getElementById("checkwords-warning");
    warning.hidden = ok;
    warning.textContent = ok ? "" : "Warning: the other side sees a different encryption key than you do. "
      + "Someone may be listening in. Hang up and do not share anything private.";
  }

  show(words) {
    this.section.hidden = false;
    this.section.dataset.state = "words";
    const line = document.getElementById("checkwords-words");
    line.dataset.words = words.join(" ");
    line.replaceChildren(...words.map((word) => {
      const span = document.createElement("span");
      span.className = "checkwords__word";
      span.textContent = word;
      return span;
    }));
  }

  /** The call ended: no connection to vouch for any more. */
  end() {
    this.attach(null);
    this.section.hidden = true;
  }
}
