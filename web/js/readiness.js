// The readiness check shown while the two talk terms: camera and microphone (what
// getUserMedia gave this page), network (the call's websocket is up) and the relay (TURN: a
// relay candidate gathered with the call's own ICE servers, relay only, within a bound). Each
// result says what to do about it. Only a missing microphone or a dropped network holds the
// caller's Pay button back, and only until they tick "Pay anyway"; a TURN server that is not
// configured or not reachable is a warning (direct connections often work without it).

export const TURN_TIMEOUT_MS = 8_000;

const ADVICE = {
  camera: "Your camera is not available: you can continue with audio only, or allow the camera in the browser's "
    + "site settings and press Check again.",
  microphone: "Your microphone is not available: the other side will not hear you. Allow it in the browser's site "
    + "settings (or plug one in) and press Check again.",
  network: "You are not connected to interKanect: check your network; the page reconnects by itself.",
  turn: "The relay server could not be reached: if the video does not connect, check your network (a firewall "
    + "may block calls) or try another browser.",
  noTurn: "No relay server is configured for calls here: callers behind strict firewalls may not connect.",
};

/** Does this call come with a TURN server at all? */
export function hasTurn(iceServers) {
  return (iceServers || []).some((server) => [].concat(server.urls || []).some((url) => /^turns?:/.test(url)));
}

/** "ok" when a relay candidate is gathered with `iceServers` within `timeoutMs`, else "fail". */
export async function probeTurn(iceServers, timeoutMs = TURN_TIMEOUT_MS) {
  const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: "relay" });
  try {
    const relay = new Promise((resolve) => {
      pc.onicecandidate = (event) => {
        if (event.candidate && / typ relay /.test(event.candidate.candidate)) resolve("ok");
        if (!event.candidate) resolve("fail");   // gathering ended without a relay
      };
      setTimeout(() => resolve("fail"), timeoutMs);
    });
    pc.createDataChannel("probe");
    await pc.setLocalDescription(await pc.createOffer());
    return await relay;
  } catch (error) {
    console.warn(`interKanect: the TURN check failed: ${error.message}`);
    return "fail";
  } finally {
    pc.close();
  }
}

export class Readiness {
  /** `media`: a promise of {camera, microphone} ("ok" or the error's name); `live`: the socket. */
  constructor({ media, live, onChange = () => {} }) {
    Object.assign(this, { media, live, onChange });
    this.section = document.getElementById("readiness");
    this.results = {};
    this.running = false;
    this.ran = false;
    this.iceServers = [];
  }

  bind() {
    document.getElementById("readiness-again").addEventListener("click", () => this.run(this.iceServers));
    document.getElementById("readiness-consent").addEventListener("change", () => this.onChange());
    this.live.on("state", () => { if (this.ran) this.checkNetwork(); });
  }

  /** Show the panel (negotiating) or hide it; the first showing runs the check. */
  show(visible, iceServers) {
    this.section.hidden = !visible;
    this.iceServers = iceServers || [];
    if (visible && !this.ran) this.run(this.iceServers);
  }

  async run(iceServers) {
    if (this.running) return;
    this.running = true;
    this.ran = true;
    this.section.dataset.state = "checking";
    ["camera", "microphone", "network", "turn"].forEach((check) => this.set(check, "checking", "Checking…"));
    this.onChange();
    this.checkNetwork();
    const turn = hasTurn(iceServers) ? probeTurn(iceServers) : Promise.resolve("none");
    const media = await this.media;
    this.set("camera", media.camera === "ok" ? "ok" : "warn", media.camera === "ok" ? "Working" : `Not available (${media.camera})`);
    this.set("microphone", media.microphone === "ok" ? "ok" : "fail",
      media.microphone === "ok" ? "Working" : `Not available (${media.microphone})`);
    const relay = await turn;
    this.set("turn", relay === "ok" ? "ok" : "warn",
      { ok: "Reachable", none: "Not configured", fail: "Not reachable" }[relay]);
    this.relay = relay;
    this.running = false;
    this.section.dataset.state = "done";
    this.advise();
    this.onChange();
  }

  checkNetwork() {
    const up = this.live.state === "open";
    this.set("network", up ? "ok" : "fail", up ? "Connected" : "Not connected");
    if (!this.running) {
      this.advise();
      this.onChange();
    }
  }

  set(check, result, words) {
    this.results[check] = result;
    const item = this.section.querySelector(`[data-check="${check}"]`);
    item.dataset.result = result;
    item.querySelector(".readiness__result").textContent = words;
  }

  advise() {
    const advice = [];
    if (this.results.network === "fail") advice.push(ADVICE.network);
    if (this.results.microphone === "fail") advice.push(ADVICE.microphone);
    if (this.results.camera === "warn") advice.push(ADVICE.camera);
    if (this.relay === "fail") advice.push(ADVICE.turn);
    if (this.relay === "none") advice.push(ADVICE.noTurn);
    document.getElementById("readiness-advice").textContent = advice.length ? advice.join(" ") : "All set.";
    document.getElementById("readiness-consent-field").hidden = !this.blocking();
  }

  // A problem that the caller should accept knowingly before paying.
  blocking() {
    return this.results.microphone === "fail" || this.results.network === "fail";
  }

  /** May the caller press Pay now? (Why not, in words, when not.) */
  payHeldBack() {
    if (!this.ran) return null;
    if (this.running) return "Checking your camera, microphone and connection…";
    if (this.blocking() && !document.getElementById("readiness-consent").checked) {
      return "Check the problems above, or tick “Pay anyway”.";
    }
    return null;
  }
}
