// A call's connection quality as a chart (GET /api/calls/<id> `quality`): round trip, packet
// loss and bitrate over the call, one line per side (the host solid, the caller dashed), each
// drop of a side from the call's log marked, and the moment a refund request points at. The
// call's page under /history and the operators' refund review draw it. A caller asking for a
// refund may click the chart to point at a moment. Text only: every value is set as text.

import { el } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 110;
const PAD = { left: 44, right: 8, top: 8, bottom: 18 };
const SIDES = ["host", "caller"];
const METRICS = [
  { key: "rtt_ms", title: "Round trip", unit: "ms" },
  { key: "loss_pct", title: "Packets lost", unit: "%" },
  { key: "kbps", title: "Bitrate received", unit: "kbit/s" },
];

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  node.append(...children);
  return node;
}

/** "m:ss" from seconds into the call. */
export function clockText(seconds) {
  const whole = Math.max(0, Math.round(seconds));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

function sideName(names, side) {
  return names[side] || (side === "host" ? "The host" : "The caller");
}

/** The call's start and end in seconds since the epoch, and its timelines' samples. */
function span(call) {
  const samples = SIDES.flatMap((side) => call.quality?.[side] || []);
  const start = call.answered_at ? Date.parse(call.answered_at) / 1000 : Math.min(...samples.map((s) => s.at_s));
  const end = call.ended_at ? Date.parse(call.ended_at) / 1000 : Math.max(...samples.map((s) => s.until_s));
  return { start, length: Math.max(1, end - start) };
}

// A side's samples as runs of points: a drop of either side (`dropsAt`, seconds since the epoch:
// the connection is gone for both) or a gap of more than three usual steps (a suspension for
// payment) breaks its line instead of drawing across it.
function runs(samples, dropsAt) {
  const steps = samples.slice(1).map((s, i) => s.at_s - samples[i].until_s).sort((a, b) => a - b);
  const usual = steps.length ? steps[Math.floor(steps.length / 2)] : 0;
  const out = [];
  samples.forEach((sample, i) => {
    const before = samples[i - 1];
    if (i === 0 || sample.at_s - before.until_s > 3 * Math.max(usual, 0.5)
      || dropsAt.some((at) => at > before.until_s && at <= sample.at_s)) out.push([]);
    out[out.length - 1].push(sample);
  });
  return out;
}

function panel(call, metric, names, timing, drops, moment) {
  const values = SIDES.flatMap((side) => (call.quality?.[side] || []).map((s) => s[metric.key]))
    .filter((v) => v !== null && v !== undefined);
  const top = Math.max(metric.key === "loss_pct" ? 5 : 1, ...values) * 1.1;
  const x = (atS) => PAD.left + ((atS - timing.start) / timing.length) * (WIDTH - PAD.left - PAD.right);
  const y = (value) => PAD.top + (1 - value / top) * (HEIGHT - PAD.top - PAD.bottom);
  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "quality-chart__plot", role: "img",
    "data-metric": metric.key });
  chart.append(svg("title", {}, `${metric.title} (${metric.unit}) over the call, host solid, caller dashed`));
  chart.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(0), y2: y(0), class: "quality-chart__axis" }));
  chart.append(svg("text", { x: PAD.left - 4, y: PAD.top + 8, class: "quality-chart__tick", "text-anchor": "end" },
    String(Math.round(top))));
  chart.append(svg("text", { x: PAD.left - 4, y: y(0), class: "quality-chart__tick", "text-anchor": "end" }, "0"));
  chart.append(svg("text", { x: PAD.left, y: HEIGHT - 4, class: "quality-chart__tick" }, "0:00"));
  chart.append(svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 4, class: "quality-chart__tick", "text-anchor": "end" },
    clockText(timing.length)));
  for (const drop of drops) {
    chart.append(svg("line", { x1: x(drop.at_s), x2: x(drop.at_s), y1: PAD.top, y2: y(0),
      class: "quality-drop", "data-side": drop.side },
    svg("title", {}, `${sideName(names, drop.side)} dropped at ${clockText(drop.at_s - timing.start)}`)));
  }
  if (moment !== null && moment !== undefined) {
    const at = timing.start + moment;
    chart.append(svg("line", { x1: x(at), x2: x(at), y1: PAD.top, y2: y(0), class: "quality-moment" }));
  }
  for (const side of SIDES) {
    const dropsAt = drops.map((drop) => drop.at_s);
    for (const run of runs(call.quality?.[side] || [], dropsAt)) {
      const points = run.filter((s) => s[metric.key] !== null && s[metric.key] !== undefined)
        .map((s) => `${x((s.at_s + s.until_s) / 2).toFixed(1)},${y(s[metric.key]).toFixed(1)}`);
      if (!points.length) continue;
      // A lone sample is a dot: a line needs two points.
      if (points.length === 1) points.push(points[0].replace(/^([\d.]+)/, (m) => (Number(m) + 2).toFixed(1)));
      chart.append(svg("polyline", { points: points.join(" "), class: `quality-line quality-line--${side}`,
        "data-side": side, "data-points": points.length }));
    }
  }
  return el("figure", { class: "quality-chart__panel" }, el("figcaption", {}, `${metric.title} (${metric.unit})`), chart);
}

function worst(samples, key, pick) {
  const values = samples.map((s) => s[key]).filter((v) => v !== null && v !== undefined);
  return values.length ? pick(...values) : null;
}

/** In words, for a screen reader and for anyone skimming: each side's worst moments. */
function summaryWords(call, names, drops) {
  return SIDES.map((side) => {
    const samples = call.quality?.[side] || [];
    if (!samples.length) return `${sideName(names, side)}: no measurements.`;
    const rtt = worst(samples, "rtt_ms", Math.max);
    const loss = worst(samples, "loss_pct", Math.max);
    const relayed = samples.some((s) => s.relayed);
    const dropped = drops.filter((d) => d.side === side).length;
    return `${sideName(names, side)}: ${samples.length} measurements, worst round trip ${rtt ?? "unknown"} ms, `
      + `worst loss ${loss ?? "unknown"}%${relayed ? ", through a relay" : ""}`
      + `${dropped ? `, dropped ${dropped} time${dropped > 1 ? "s" : ""}` : ""}.`;
  }).join(" ");
}

/**
 * The chart of `call` (a summary with `quality`, `log`, `answered_at`, `ended_at`); `names` as
 * calllog.namesOf gives them; `moment`: seconds into the call a refund request points at;
 * `onPick(seconds)`: when given, a click on the chart points at that moment.
 */
export function qualityChart(call, names, { moment = null, onPick = null } = {}) {
  const samples = SIDES.flatMap((side) => call.quality?.[side] || []);
  if (!samples.length) {
    return el("p", { class: "hint quality-chart quality-chart--empty" },
      "No connection measurements for this call (media never flowed, or the pages could not measure it).");
  }
  const timing = span(call);
  const drops = (call.log || []).filter((entry) => entry.event === "left" && entry.at_s >= timing.start)
    .map((entry) => ({ at_s: entry.at_s, side: entry.side }));
  const legend = el("p", { class: "quality-chart__legend" },
    el("span", { class: "quality-key quality-key--host" }, sideName(names, "host")),
    el("span", { class: "quality-key quality-key--caller" }, sideName(names, "caller")),
    drops.length ? el("span", { class: "quality-key quality-key--drop" }, "a side dropped") : null,
    moment !== null && moment !== undefined
      ? el("span", { class: "quality-key quality-key--moment", id: "quality-moment-key" },
        `the moment pointed at (${clockText(moment)})`) : null);
  const figure = el("div", { class: "quality-chart", dataset: { samples: String(samples.length) } },
    legend, ...METRICS.map((metric) => panel(call, metric, names, timing, drops, moment)),
    el("p", { class: "quality-chart__summary" }, summaryWords(call, names, drops)));
  if (onPick) {
    figure.classList.add("quality-chart--pick");
    figure.addEventListener("click", (event) => {
      const plot = event.target.closest("svg");
      if (!plot) return;
      const box = plot.getBoundingClientRect();
      const fraction = ((event.clientX - box.left) / box.width * WIDTH - PAD.left) / (WIDTH - PAD.left - PAD.right);
      onPick(Math.round(Math.min(1, Math.max(0, fraction)) * timing.length));
    });
  }
  return figure;
}
