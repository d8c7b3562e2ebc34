"""Python's cyclic garbage collector, set for a server holding thousands of pages and calls.

With CPython's default thresholds (700, 10, 10) a gateway with 2,000 pages relaying 500 calls'
signaling ran a full collection every ~0.4 s, each ~100 ms with its loop stopped: a frame in
flight under load outlives several young collections (one per 700 new objects), so it is
promoted to the oldest generation, dies there, and the oldest generation's "grew by a quarter"
rule fires again and again. Signaling round trips p99 171 ms, 65 ms with the collector off
(`scripts/loadgen.py --members 2000 --calls 500`, its signaling phase lengthened for the
profile; README "Decisions"). A young generation of 50,000 objects lets short-lived objects die
young: the same run had no full collection and a p99 of 74 ms, and a young collection took
~10 ms.

Cycles are still collected (the collector stays on); what the process imported at start is
frozen, since it lives as long as the process and need not be walked again.
"""
import gc
import time

# New objects between young collections (default 700); the older generations keep CPython's
# ratios, so a full collection still comes once the old objects have grown by a quarter.
YOUNG_THRESHOLD = 50_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 10


def tune():
    """Call once the process has imported what it runs, before it takes load (and, in a node,
    before it forks its actors, which inherit the setting)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)


def watch_pauses(observe):
    """Call `observe(generation, seconds)` after every collection: the time the process stood
    still for it."""
    started = [0.0]

    def callback(phase, info):
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            observe(info["generation"], time.perf_counter() - started[0])
    gc.callbacks.append(callback)
    return callback
