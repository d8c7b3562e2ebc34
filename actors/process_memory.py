"""Private memory of the actor processes a node forks.

Thespian's multiprocTCPBase forks every actor from the process that creates it (members from
the directory, call sessions from their host's shard), so a new actor starts out sharing every page
of its parent and costs only the pages written after the fork (copy-on-write), by it or by
its parent. `install()` runs in the node's process before the actor system starts, so the
admin and every actor of the node inherit it. Figures: README.md, "Performance".
"""
import gc
import importlib.util
import os
import sys

_installed = False


def install():
    global _installed
    if _installed:
        return
    _installed = True
    # A cyclic collection in a forked actor writes the GC header of every object it walks,
    # inherited ones included: one full collection took a forked node process from 1 MB to
    # 14 MB private. Frozen in the child, what it inherited stays out of its collections
    # (shared, as it was); what the child allocates itself is collected as before.
    os.register_at_fork(after_in_child=gc.freeze)
    # Thespian tries `from setproctitle import setproctitle` in every new actor process. Not
    # installed, each try searched sys.path again: ~0.2 MB private per actor. None in
    # sys.modules fails the same import at once; installed, it is imported here, once, shared.
    if importlib.util.find_spec("setproctitle") is None:
        sys.modules.setdefault("setproctitle", None)
    else:
        import setproctitle  # noqa: F401
