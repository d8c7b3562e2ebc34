// The media path of a call page: one RTCPeerConnection at a time, negotiated only through
// the gateway's `signal` frames. The caller offers; the host answers every offer it gets
// with a fresh connection (the caller restarts after a refresh, a dropped socket or a
// payment suspension). The server never sees the media: it relays SDP and candidates.

// A connection that has not come up in this time is started again (by the caller).
export const CONNECT_TIMEOUT_MS = 12_000;
// Candidates kept for a description that has not arrived yet (or for one being replaced).
const PENDING_CANDIDATES_MAX = 100;
// The caller's offer id travels in the answer as this session attribute, so an answer to an
// older offer (still in flight when the caller started again) is recognised and ignored.
const OFFER_TAG = "a=x-interkanect-offer:";
// The room's data channels: negotiated with fixed ids, so both sides create them on every new
// connection without any extra signaling (the offer carries one m=application section), and the
// server relays nothing but that SDP. A new connection means new channels: the modules rebind.
export const DATA_CHANNELS = Object.freeze({ chat: 0, whiteboard: 1, checkwords: 2 });
// One DTLS certificate per page, reused by every connection it makes: the encryption check words
// then stay the same across the reconnects of a call (payment, a dropped link) until a refresh.
const CERTIFICATE = { name: "ECDSA", namedCurve: "P-256" };

/** The ICE username fragment of a session description (its first one: the media is bundled). */
export function iceUfrag(sdp) {
  const match = /^a=ice-ufrag:(\S+)/m.exec(sdp || "");
  return match ? match[1] : null;
}

/** The id in an SDP's origin line (o=<user> <session id> ...): new for every connection. */
export function sessionId(sdp) {
  const match = /^o=\S+ (\d+) /m.exec(sdp || "");
  return match ? match[1] : null;
}

/** `sdp` with a session-level line naming the offer it answers (after the t= line). */
export function tagAnswer(sdp, offerId) {
  if (!offerId) return sdp;
  return sdp.replace(/^(t=[^\r\n]*\r?\n)/m, `$1${OFFER_TAG}${offerId}\r\n`);
}

export function answeredOffer(sdp) {
  const at = (sdp || "").indexOf(OFFER_TAG);
  return at < 0 ? null : sdp.slice(at + OFFER_TAG.length).split(/\r?\n/)[0].trim();
}

function candidateFields(candidate) {
  return {
    candidate: candidate.candidate, sdpMid: candidate.sdpMid, sdpMLineIndex: candidate.sdpMLineIndex,
    usernameFragment: candidate.usernameFragment,
  };
}

export class PeerLink {
  /**
   * role: "caller" (offers) or "host" (answers); send(fields): send a signal frame's fields;
   * localMedia: a promise of the local MediaStream (or null without camera and microphone);
   * onRemoteStream(stream | null); onState("idle" | "new" | "connecting" | "connected" |
   * "disconnected" | "failed" | "closed"); onStalled(): the connection did not come up;
   * onChannels({chat, whiteboard, checkwords} | null): the data channels of a new connection
   * (null: gone); onSecured({local, remote}): the SDPs of a connection that came up.
   */
  constructor({ role, send, localMedia, onRemoteStream, onState, onStalled, onChannels = () => {},
    onSecured = () => {} }) {
    Object.assign(this, { role, send, localMedia, onRemoteStream, onState, onStalled, onChannels, onSecured });
    this.certificate = null;
    RTCPeerConnection.generateCertificate?.(CERTIFICATE).then((certificate) => { this.certificate = certificate; },
      (error) => console.warn(`interKanect: no reusable DTLS certificate: ${error.message}`));
    this.pc = null;
    this.generation = 0;           // bumped by every start and close: late async steps check it
    this.offerId = null;           // the caller's current offer
    this.outgoing = [];            // our candidates, held until our description has been sent
    this.described = false;
    this.pending = [];             // received candidates without a matching remote description
    this.watchdog = null;
  }

  /** Up or on its way up: nothing to restart. */
  get active() {
    return this.pc !== null && !["failed", "closed"].includes(this.pc.connectionState);
  }

  get state() {
    return this.pc ? this.pc.connectionState : "idle";
  }

  /** Caller: a new connection and offer, replacing any previous one. */
  async offer(iceServers) {
    const generation = this.replace(iceServers);
    const pc = this.pc;
    await this.addLocalTracks(pc, generation, true);
    if (generation !== this.generation) return;
    const offer = await pc.createOffer();
    if (generation !== this.generation) return;
    await pc.setLocalDescription(offer);
    if (generation !== this.generation) return;
    this.offerId = sessionId(pc.localDescription.sdp);
    this.describe({ kind: "offer", sdp: pc.localDescription.sdp });
    this.armWatchdog(generation);
  }

  /** A relayed signal frame from the other side. */
  async receive(frame) {
    try {
      if (frame.kind === "offer" && this.role === "host") await this.answer(frame);
      else if (frame.kind === "answer" && this.role === "caller") await this.answered(frame);
      else if (frame.kind === "candidate" && frame.candidate) await this.candidate(frame.candidate);
    } catch (error) {
      // A description or candidate for a connection that was replaced meanwhile: harmless,
      // the caller starts again if the current one does not come up.
      console.warn(`interKanect: signal ${frame.kind} not applied: ${error.message}`);
    }
  }

  async answer(frame) {
    const generation = this.replace(this.iceServers);
    const pc = this.pc;
    await pc.setRemoteDescription({ type: "offer", sdp: frame.sdp });
    if (generation !== this.generation) return;
    await this.flushPending(pc);
    await this.addLocalTracks(pc, generation, false);
    if (generation !== this.generation) return;
    await pc.setLocalDescription(await pc.createAnswer());
    if (generation !== this.generation) return;
    this.describe({ kind: "answer", sdp: tagAnswer(pc.localDescription.sdp, sessionId(frame.sdp)) });
  }

  async answered(frame) {
    const pc = this.pc;
    if (!pc || pc.signalingState !== "have-local-offer") return;
    const answers = answeredOffer(frame.sdp);
    if (answers && answers !== this.offerId) return;  // the answer to an offer we replaced
    await pc.setRemoteDescription({ type: "answer", sdp: frame.sdp });
    await this.flushPending(pc);
  }

  async candidate(candidate) {
    const pc = this.pc;
    if (pc && pc.remoteDescription && this.matches(pc, candidate)) {
      await pc.addIceCandidate(candidate);
      return;
    }
    this.pending.push(candidate);
    if (this.pending.length > PENDING_CANDIDATES_MAX) this.pending.shift();
  }

  matches(pc, candidate) {
    return !candidate.usernameFragment || candidate.usernameFragment === iceUfrag(pc.remoteDescription.sdp);
  }

  async flushPending(pc) {
    const ready = this.pending.filter((candidate) => this.matches(pc, candidate));
    this.pending = this.pending.filter((candidate) => !ready.includes(candidate));
    for (const candidate of ready) {
      try {
        await pc.addIceCandidate(candidate);
      } catch (error) {
        console.warn(`interKanect: a candidate was not applied: ${error.message}`);
      }
    }
  }

  /** Stop sending and receiving (suspended for payment, the other side away, call over). */
  close() {
    this.generation += 1;
    clearTimeout(this.watchdog);
    if (this.pc) {
      this.pc.onicecandidate = this.pc.ontrack = this.pc.onconnectionstatechange = null;
      this.pc.close();
      this.pc = null;
      this.onRemoteStream(null);
      this.onChannels(null);   // closing the connection closes its channels without a close event
      this.onState("idle");
    }
    this.outgoing = [];
    this.described = false;
    this.offerId = null;
  }

  /** ICE servers for the next connection (the host's come with each call_state). */
  useIceServers(iceServers) {
    this.iceServers = iceServers;
  }

  replace(iceServers) {
    this.close();
    if (iceServers) this.iceServers = iceServers;
    const generation = this.generation;
    const certificates = this.certificate && this.certificate.expires > Date.now() ? [this.certificate] : undefined;
    const pc = new RTCPeerConnection({ iceServers: this.iceServers || [], certificates });
    pc.onicecandidate = (event) => {
      if (!event.candidate || !event.candidate.candidate) return;
      const fields = { kind: "candidate", candidate: candidateFields(event.candidate) };
      if (this.described) this.send(fields); else this.outgoing.push(fields);
    };
    pc.ontrack = (event) => {
      const stream = event.streams[0] || this.remoteStream(event.track);
      this.onRemoteStream(stream);
    };
    pc.onconnectionstatechange = () => {
      if (generation !== this.generation) return;
      this.onState(pc.connectionState);
      if (pc.connectionState === "connected") {
        clearTimeout(this.watchdog);
        this.onSecured({ local: pc.localDescription?.sdp, remote: pc.remoteDescription?.sdp });
      }
      if (pc.connectionState === "failed" && this.role === "caller") this.stalled(generation);
    };
    this.pc = pc;
    this.onChannels(Object.fromEntries(Object.entries(DATA_CHANNELS).map(([label, id]) =>
      [label, pc.createDataChannel(label, { negotiated: true, id })])));
    this.onState("new");
    return generation;
  }

  remoteStream(track) {
    this.fallbackStream ??= new MediaStream();
    for (const old of this.fallbackStream.getTracks()) {
      if (old.kind === track.kind) this.fallbackStream.removeTrack(old);
    }
    this.fallbackStream.addTrack(track);
    return this.fallbackStream;
  }

  // Send our description, then the candidates gathered while it was being made.
  describe(fields) {
    this.send(fields);
    this.described = true;
    this.outgoing.splice(0).forEach((candidate) => this.send(candidate));
  }

  // Our tracks go on the connection; without a camera (or any device) the caller still asks
  // to receive both, so it sees and hears the host.
  async addLocalTracks(pc, generation, offering) {
    const stream = await this.localMedia;
    if (generation !== this.generation) return;
    const tracks = stream ? stream.getTracks() : [];
    tracks.forEach((track) => pc.addTrack(track, stream));
    if (!offering) return;
    for (const kind of ["audio", "video"]) {
      if (!tracks.some((track) => track.kind === kind)) pc.addTransceiver(kind, { direction: "recvonly" });
    }
  }

  armWatchdog(generation) {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      const up = this.pc && this.pc.connectionState === "connected";
      if (generation === this.generation && !up) this.stalled(generation);
    }, CONNECT_TIMEOUT_MS);
  }

  stalled(generation) {
    if (generation !== this.generation) return;
    clearTimeout(this.watchdog);
    this.onStalled();
  }
}
