// What a call page does (/call/<id>, or a page turned into one in place): take the call over
// with attach_call (again after every reconnect or refresh), show the call as the server tells
// it, send the member's choices, and run the peer-to-peer media while the call allows it.

import * as api from "./api.js";
import { bindRoomTabs, CallView } from "./callui.js";
import { otherSide } from "./endreasons.js";
import { Chat } from "./chat.js";
import { CheckWords } from "./checkwords.js";
import { followFees, hostEarnsWords } from "./feepreview.js";
import { FormError, handleForm } from "./forms.js";
import { FrameError } from "./live.js";
import { pageReady } from "./ready.js";
import { PayPalCheckout } from "./paypal.js";
import { QualityReporter } from "./quality.js";
import { Readiness } from "./readiness.js";
import { RoomLog } from "./roomlog.js";
import { PeerLink } from "./rtc.js";
import { centsFromDollars, secondsFromMinutes } from "./terms.js";
import { Tips } from "./tips.js";
import { Whiteboard } from "./whiteboard.js";

// Events after which media must be (re)started by the caller when it is not up.
const START_MEDIA_EVENTS = new Set(["accepted", "payment_captured", "running", "peer_back", "joined", "restored",
  "extension_negotiation"]);
// Events that mean a page of the call is new (a refresh, a reconnect): always start again.
const NEW_PAGE_EVENTS = new Set(["peer_back", "joined"]);
const TICK_MS = 250;
const MEDIA_CHOICES_KEY = "interkanect.call.media";   // {microphone, camera}: per tab, kept over refreshes
// The terms form's field each refusal is about.
const TERMS_FIELDS = {
  price_format: "price", invalid_price: "price", free_tier_price: "price", no_payout_email: "price",
  price_out_of_range: "price", length_format: "minutes", invalid_length: "minutes", free_tier_length: "minutes",
  length_out_of_range: "minutes",
};
const ONE_WAY = "you can see and hear the other side, but they cannot see or hear you";
const CAMERA = { width: { ideal: 1280 }, height: { ideal: 720 } };

function mediaChoices() {
  try {
    return { microphone: true, camera: true, ...JSON.parse(sessionStorage.getItem(MEDIA_CHOICES_KEY) || "{}") };
  } catch {
    return { microphone: true, camera: true };
  }
}

/**
 * The camera and microphone: {stream, camera, microphone}, each device "ok" or the name of its
 * error (the readiness check shows them). Audio only when the camera fails, video only when the
 * microphone fails; stream null when nothing opens.
 */
async function openLocalMedia(view) {
  if (!navigator.mediaDevices?.getUserMedia) {
    view.mediaNote(`This browser cannot use a camera or microphone here: ${ONE_WAY}.`);
    return { stream: null, camera: "NotSupportedError", microphone: "NotSupportedError" };
  }
  const open = (constraints) => navigator.mediaDevices.getUserMedia(constraints);
  try {
    return { stream: await open({ audio: true, video: CAMERA }), camera: "ok", microphone: "ok" };
  } catch (bothError) {
    try {
      const stream = await open({ audio: true });
      view.mediaNote(`Your camera is not available (${bothError.name}), so you are on audio only.`);
      return { stream, camera: bothError.name, microphone: "ok" };
    } catch (microphoneError) {
      try {
        const stream = await open({ video: CAMERA });
        view.mediaNote(`Your microphone is not available (${microphoneError.name}): the other side sees you but `
          + "cannot hear you.");
        return { stream, camera: "ok", microphone: microphoneError.name };
      } catch {
        view.mediaNote(`No camera or microphone could be opened (${microphoneError.name}): ${ONE_WAY}.`);
        return { stream: null, camera: bothError.name, microphone: microphoneError.name };
      }
    }
  }
}

export class CallPage {
  constructor({ me, live }, callId) {
    this.me = me;
    this.live = live;
    this.callId = callId;
    this.view = new CallView(me);
    this.state = null;
    this.requests = new Map();      // id of a frame this page sent → the button that sent it
    this.signals = new Set();       // ids of signal frames: a refusal there is a race, not news
    this.ready = false;
    this.choices = mediaChoices();
    this.checkout = new PayPalCheckout(callId, (step) => this.view.setPaymentStep(step));
    this.tips = new Tips({ live }, callId);
    const media = openLocalMedia(this.view);
    this.localMedia = media.then(({ stream }) => this.showLocal(stream));
    // The room: chat, whiteboard and check words ride the connection's data channels.
    this.chat = new Chat(callId, { onUnread: (count) => this.view.setUnread(count) });
    this.whiteboard = new Whiteboard(callId, null);
    this.checkWords = new CheckWords();
    this.roomLog = new RoomLog(callId, me.display_name);
    this.readiness = new Readiness({ media, live, onChange: () => this.gatePay() });
    this.link = new PeerLink({
      role: null, localMedia: this.localMedia,
      send: (fields) => this.sendSignal(fields),
      onRemoteStream: (stream) => this.showRemote(stream),
      onState: (mediaState) => this.view.setMediaState(mediaState),
      onStalled: () => this.restartMedia(),
      onChannels: (channels) => {
        this.chat.attach(channels?.chat ?? null);
        this.whiteboard.attach(channels?.whiteboard ?? null);
        this.checkWords.attach(channels?.checkwords ?? null);
      },
      onSecured: (descriptions) => this.checkWords.secured(descriptions),
    });
    // Connection quality as evidence for the call's log (a refusal is a race: ignored like any
    // answer to a frame this page did not wait for).
    this.quality = new QualityReporter(this.link,
      (fields) => this.live.send({ type: "quality", call_id: this.callId, ...fields }));
  }

  /**
   * Follow the call. `backlog`: its frames this page's socket already received (a page turned
   * into the call page in place); without a call_state among them, attach to get one.
   */
  start(backlog = []) {
    const live = this.live;
    live.on("call_state", (state) => { if (state.call_id === this.callId) this.onState(state); });
    live.on("signal", (frame) => { if (frame.call_id === this.callId) this.link.receive(frame); });
    live.on("error", (error) => this.onError(error));
    live.on("state", (connection) => this.onConnection(connection));
    this.bindControls();
    // A PayPal popup coming back to /call/<id> leaves the call to this page (pages/call.js).
    window.interkanectCall = this.callId;
    setInterval(() => {
      this.checkout.tick();
      this.tips.tick();
      this.view.tick();
    }, TICK_MS);
    for (const frame of backlog) {
      if (frame.type === "call_state") this.onState(frame); else this.link.receive(frame);
    }
    if (live.state === "open" && !backlog.some((frame) => frame.type === "call_state")) this.attach();
  }

  // Every new socket takes the call over again: after a refresh, and after a dropped connection.
  onConnection(connection) {
    this.view.connectionLost(connection === "closed");
    if (connection === "open" && this.state?.state !== "ended") this.attach();
  }

  attach() {
    this.attachId = this.live.send({ type: "attach_call", call_id: this.callId });
  }

  onState(state) {
    const previous = this.state;
    this.state = state;
    this.releaseButtons();
    this.view.clearError();
    this.checkout.update(state);
    this.view.paymentStep = this.checkout.step;
    this.view.render(state, previous);
    this.renderRoom(state);
    this.tips.onState(state);   // a tip never touches the media
    this.link.role = state.role;
    this.syncMedia(state);
    this.quality.follow(state);
    if (state.state === "ended") this.finish();
    this.markReady();
  }

  // The room follows the call: names, the readiness check while terms are talked, the log.
  renderRoom(state) {
    const other = otherSide(state);
    this.chat.setNames("You", other.name);
    this.whiteboard.board.author = state.role;
    this.readiness.show(state.state === "negotiating", state.ice_servers);
    this.gatePay();
    if (state.state !== "ringing") this.roomLog.refresh();
  }

  // The caller's Pay button waits for the readiness check (and for "Pay anyway" after a problem).
  gatePay() {
    const button = document.getElementById("pay-button");
    const held = this.state?.role === "caller" ? this.readiness.payHeldBack() : null;
    const waiting = [...this.requests.values()].includes(button);
    button.disabled = waiting || Boolean(held);
    const note = document.getElementById("pay-held");
    note.hidden = !held;
    note.textContent = held || "";
  }

  syncMedia(state) {
    const other = otherSide(state);
    if (!state.media || !other.connected) {
      this.link.close();
      return;
    }
    this.link.useIceServers(state.ice_servers);
    if (state.role !== "caller") return;  // the host answers whatever the caller offers
    if (NEW_PAGE_EVENTS.has(state.event) || (START_MEDIA_EVENTS.has(state.event) && !this.link.active)) {
      this.link.offer(state.ice_servers);
    }
  }

  // The caller's connection did not come up: offer again while the call still wants media.
  restartMedia() {
    const state = this.state;
    if (state && state.role === "caller" && state.media && state.host.connected) this.link.offer(state.ice_servers);
  }

  finish() {
    this.quality.stop();
    this.link.close();
    this.chat.end();
    this.checkWords.end();
    this.localMedia.then((stream) => stream?.getTracks().forEach((track) => track.stop()));
  }

  markReady() {
    if (this.ready) return;
    this.ready = true;
    pageReady();
  }

  // Frames ----------------------------------------------------------------------------

  /** Send a frame of this call; its refusal shows on the page. `button` waits for the answer. */
  act(type, fields = {}, button = null) {
    const id = this.live.send({ type, call_id: this.callId, ...fields });
    if (id === null) {
      this.view.showError(new FrameError("not_connected",
        "you are not connected right now; wait for the reconnect and try again"));
      return;
    }
    this.requests.set(id, button);
    if (button) button.disabled = true;
  }

  // An answer came (the call changed, or a refusal): the buttons can be pressed again.
  releaseButtons() {
    for (const button of this.requests.values()) if (button) button.disabled = false;
    this.requests.clear();
    this.gatePay();
  }

  sendSignal(fields) {
    const id = this.live.send({ type: "signal", call_id: this.callId, ...fields });
    if (id !== null) this.signals.add(id);
  }

  onError(error) {
    if (this.signals.delete(error.id)) {
      // peer_away and media_not_allowed are races (a page changing, a state changing) that the
      // next call_state settles; but a page whose call another page took over must say so.
      if (error.code === "not_call_page") this.lostToAnotherPage(error);
      return;
    }
    if (error.id !== null && error.id === this.attachId) {
      this.attachRefused(error);
      return;
    }
    if (!this.requests.has(error.id)) return;  // not this page's (the terms form shows its own)
    this.releaseButtons();
    this.view.showError(error);
  }

  lostToAnotherPage(error) {
    this.link.close();
    this.view.showError(error);
  }

  // The call is over (or not this member's): say so, from the call's history when there is one.
  async attachRefused(error) {
    let call = null;
    try {
      call = (await api.get(`/api/calls/${this.callId}`)).call;
    } catch (historyError) {
      if (historyError.status !== 404) console.warn(historyError);
    }
    if (call && call.state === "ended") {
      this.finish();
      this.view.renderEndedFromHistory(call);
      this.roomLog.refresh();
    } else {
      this.view.showError(call ? error : { code: error.code,
        message: "there is no call at this address that you take part in" });
    }
    this.markReady();
  }

  // Controls --------------------------------------------------------------------------

  bindControls() {
    const on = (id, handler) => {
      const button = document.getElementById(id);
      button.addEventListener("click", () => handler(button));
    };
    on("hangup-button", (button) => {
      this.view.endedBy.byMe = true;
      this.act("hang_up", {}, button);
    });
    on("cancel-button", (button) => this.act("cancel", {}, button));
    on("pay-button", (button) => this.act("pay", { proposal: this.state?.proposal?.proposal }, button));
    on("paypal-button", () => {
      const payment = this.state?.state === "awaiting_payment" ? this.state.payment : null;
      if (payment) this.checkout.open(payment.approve_url);   // from the click: browsers allow the popup
    });
    on("renegotiate-button", (button) => this.act("renegotiate", {}, button));
    on("decline-terms-button", (button) => this.act("decline_terms", {}, button));
    on("extend-yes", (button) => this.act("extend", { yes: true }, button));
    on("extend-no", (button) => this.act("extend", { yes: false }, button));
    on("mute-button", () => this.toggle("microphone"));
    on("camera-button", () => this.toggle("camera"));
    on("sound-button", () => this.unmuteRemote());
    this.bindTermsForm();
    this.tips.bind();
    this.chat.bind();
    this.whiteboard.bind();
    this.readiness.bind();
    bindRoomTabs((tab) => {
      this.chat.setVisible(tab === "tab-chat");
      if (tab === "tab-board") this.whiteboard.resize();
      if (tab === "tab-log") this.roomLog.refresh();
    });
  }

  bindTermsForm() {
    const form = document.getElementById("terms-form");
    // The host sees what a price leaves them as they type it (the server's fee rule).
    followFees(form.elements.price, document.getElementById("price-net"), hostEarnsWords);
    handleForm(form, async (values) => {
      const chargeable = !document.getElementById("price-field").hidden;
      const priceCents = chargeable ? centsFromDollars(values.price) : 0;
      const lengthS = secondsFromMinutes(values.minutes);
      try {
        await this.live.request({ type: "propose", call_id: this.callId, price_cents: priceCents, length_s: lengthS },
          { call_state: (state) => state.call_id === this.callId && state.event === "proposed" });
      } catch (refused) {
        throw new FormError(refused.code, refused.message, TERMS_FIELDS[refused.code]);
      }
    }, TERMS_FIELDS);
  }

  // Microphone and camera ----------------------------------------------------------------

  toggle(device) {
    this.choices[device] = !this.choices[device];
    sessionStorage.setItem(MEDIA_CHOICES_KEY, JSON.stringify(this.choices));
    this.localMedia.then((stream) => this.applyChoices(stream));
  }

  showLocal(stream) {
    document.getElementById("local-video").srcObject = stream;
    this.applyChoices(stream);
    return stream;
  }

  // Muting disables the track (the connection keeps it), so the choice survives every restart.
  applyChoices(stream) {
    const { microphone, camera } = this.choices;
    const audio = stream ? stream.getAudioTracks() : [];
    const video = stream ? stream.getVideoTracks() : [];
    audio.forEach((track) => { track.enabled = microphone; });
    video.forEach((track) => { track.enabled = camera; });
    // Toggle buttons keep their label; aria-pressed (and the crossed-out icon) says which way.
    const mute = document.getElementById("mute-button");
    mute.disabled = !audio.length;
    mute.setAttribute("aria-pressed", String(!microphone));
    const cameraButton = document.getElementById("camera-button");
    cameraButton.disabled = !video.length;
    cameraButton.setAttribute("aria-pressed", String(!camera));
    document.getElementById("local-tile").dataset.camera = video.length && camera ? "on" : "off";
  }

  // The other side ------------------------------------------------------------------------

  showRemote(stream) {
    const video = document.getElementById("remote-video");
    if (video.srcObject === stream) return;
    video.srcObject = stream;
    if (!stream) return;
    video.muted = false;
    video.play().catch(() => {
      // The browser refuses sound before the person has touched the page: play muted and offer sound.
      video.muted = true;
      document.getElementById("sound-button").hidden = false;
      video.play().catch((error) => console.warn("interKanect: the other side's video does not play", error));
    });
  }

  unmuteRemote() {
    const video = document.getElementById("remote-video");
    video.muted = false;
    video.play().catch(() => {});
    document.getElementById("sound-button").hidden = true;
  }
}
