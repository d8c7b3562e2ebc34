// Connection quality as evidence: while media flows, the call page sends the server a small
// summary of its RTCPeerConnection's statistics every `limits.quality_interval_ms` (a `quality`
// frame): round trip, packet loss and bitrate of what it receives, video freezes, whether the
// path is relayed. Never media, never content. The call keeps both sides' timelines for its log
// and its signed record; the call's page under /history shows them (qualitychart.js).

/** One summary of `report` (an RTCStatsReport) since `before` (the totals of the last one, or null). */
export function summarise(report, before, nowMs) {
  let pair = null;
  const candidates = new Map();
  const totals = { at: nowMs, received: 0, lost: 0, bytes: 0, freezes: null };
  for (const stat of report.values()) {
    if (stat.type === "transport" && stat.selectedCandidatePairId) pair = report.get(stat.selectedCandidatePairId);
    else if (stat.type === "candidate-pair" && stat.nominated && stat.state === "succeeded" && !pair) pair = stat;
    else if (stat.type === "local-candidate") candidates.set(stat.id, stat);
    else if (stat.type === "inbound-rtp") {
      totals.received += stat.packetsReceived || 0;
      totals.lost += Math.max(0, stat.packetsLost || 0);
      totals.bytes += stat.bytesReceived || 0;
      // Chromium counts freezes of the video it shows; Firefox does not say (null).
      if (stat.kind === "video" && typeof stat.freezeCount === "number") totals.freezes = (totals.freezes || 0) + stat.freezeCount;
    }
  }
  const local = pair ? candidates.get(pair.localCandidateId) || report.get(pair.localCandidateId) : null;
  const summary = {
    rtt_ms: typeof pair?.currentRoundTripTime === "number" ? bounded(pair.currentRoundTripTime * 1000, 60_000) : null,
    loss_pct: null, kbps: null, freezes: null, relayed: local?.candidateType === "relay",
  };
  if (before) {
    const expected = (totals.received - before.received) + (totals.lost - before.lost);
    if (expected > 0) summary.loss_pct = bounded(((totals.lost - before.lost) / expected) * 100, 100);
    const seconds = (totals.at - before.at) / 1000;
    if (seconds > 0) summary.kbps = bounded(((totals.bytes - before.bytes) * 8) / 1000 / seconds, 1_000_000);
    if (totals.freezes !== null && before.freezes !== null) summary.freezes = Math.min(10_000, Math.max(0, totals.freezes - before.freezes));
  }
  return { summary, totals };
}

function bounded(value, most) {
  return Math.round(Math.min(most, Math.max(0, value)) * 10) / 10;
}

export class QualityReporter {
  /** link: the call's PeerLink (its `pc` changes with every reconnect); send(fields): a quality frame. */
  constructor(link, send) {
    this.link = link;
    this.send = send;
    this.timer = null;
    this.intervalMs = null;
    this.before = null;      // {pc, totals}: the last summary's totals, for the next one's rates
  }

  /** Follow the call's state: report while media is allowed, at the interval the server asks. */
  follow(state) {
    const intervalMs = state.media && state.state !== "ended" ? state.limits?.quality_interval_ms : null;
    if (intervalMs === this.intervalMs) return;
    clearInterval(this.timer);
    this.timer = null;
    this.intervalMs = intervalMs || null;
    if (this.intervalMs) this.timer = setInterval(() => this.report(), this.intervalMs);
  }

  stop() {
    this.follow({ media: false });
  }

  async report() {
    const pc = this.link.pc;
    if (!pc || pc.connectionState !== "connected") {
      this.before = null;    // no link: the chart shows the gap
      return;
    }
    let report;
    try {
      report = await pc.getStats();
    } catch {
      return;
    }
    const before = this.before?.pc === pc ? this.before.totals : null;
    const { summary, totals } = summarise(report, before, performance.now());
    this.before = { pc, totals };
    if (before) this.send(summary);   // the first look only sets the baseline for the rates
  }
}
