"""Connection quality as evidence: the bounded timeline of what each side's browser measured.

During a call each page sends a `quality` frame every few seconds (policy quality_interval_s)
with a summary of its RTCPeerConnection's statistics: round-trip time, packet loss, incoming
bitrate, video freezes, whether the path is relayed. Never media, never content. The call keeps
one timeline per side, stamped with the server's time (a browser's clock is not evidence), and
it stays bounded whatever a call lasts: when a side's timeline is full (quality_samples_max),
neighbouring samples are merged two by two, keeping the worst of each pair (the highest
round trip and loss, the lowest bitrate, the freezes added up), so a drop is never averaged
away; the timeline then covers the whole call at half the resolution.

Pure: the call rules (rules/call.py) call `check` and `add`.
"""
from rules.terms import Refused

# What a sample may say, and its bounds: a value outside is a page's bug or a forgery.
MEASURES = {
    "rtt_ms": (0, 60_000),          # the selected candidate pair's current round trip
    "loss_pct": (0, 100),           # packets lost of those expected since the last sample
    "kbps": (0, 1_000_000),         # bits received per second since the last sample, in thousands
    "freezes": (0, 10_000),         # video freezes since the last sample
}


def check(frame):
    """The sample a `quality` frame carries, or Refused: numbers within bounds (a measure the
    browser could not take is None), `relayed` a boolean."""
    sample = {}
    for name, (low, high) in MEASURES.items():
        value = frame.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not low <= value <= high):
            raise Refused("invalid_quality", f"{name} must be a number from {low} to {high}, or null")
        sample[name] = None if value is None else round(value, 1)
    if not isinstance(frame.get("relayed"), bool):
        raise Refused("invalid_quality", "relayed must be true or false")
    sample["relayed"] = frame["relayed"]
    return sample


def add(timeline, sample, now_s, interval_s, samples_max):
    """Append `sample` taken at `now_s` to one side's `timeline` (a list, changed in place);
    Refused when it comes sooner than half the interval after the one before."""
    if timeline and now_s - timeline[-1]["until_s"] < interval_s / 2:
        raise Refused("quality_too_often", f"one quality summary every {interval_s:g} s at most")
    timeline.append(dict(sample, at_s=round(now_s, 3), until_s=round(now_s, 3), n=1))
    if len(timeline) >= samples_max:
        timeline[:] = [_merge(timeline[i:i + 2]) for i in range(0, len(timeline), 2)]


def _merge(pair):
    if len(pair) == 1:
        return pair[0]
    first, second = pair

    def worst(name, pick):
        values = [s[name] for s in pair if s[name] is not None]
        return pick(values) if values else None
    return {"at_s": first["at_s"], "until_s": second["until_s"], "n": first["n"] + second["n"],
            "rtt_ms": worst("rtt_ms", max), "loss_pct": worst("loss_pct", max), "kbps": worst("kbps", min),
            "freezes": (first["freezes"] or 0) + (second["freezes"] or 0)
            if first["freezes"] is not None or second["freezes"] is not None else None,
            "relayed": first["relayed"] or second["relayed"]}
