"""Call session processes die with the process that forked them.

With `call_hosting = "process"` Thespian forks each call session from its host's shard and
tells nobody when the shard dies: its sessions would run on, orphans nobody can reach, while
the shard's replacement restores the same calls from the store — two sessions for one call.
With the kernel's parent-death signal the orphans go with their creator, so a dead shard is
like a small lost node: its replacement brings its members' live calls back from the store,
once (docs/operating.md). (Calls hosted inside their shard die with it by construction.)

Only for the actors whose creator restores them: not every process of a node (the admin
daemonizes with a double fork, and would die with the intermediate process). `install()` runs
in the node's process before the actor system starts; without it (unit tests on
simpleSystemBase, where actors are no processes) `die_with_parent()` does nothing. Linux
only: elsewhere the orphans run on.
"""
import logging
import os
import signal

from interkanect import processes

log = logging.getLogger(__name__)

_installed = False
_forking_pid = None  # the process that last forked: in a new actor, its creator


def install():
    global _installed
    if not _installed:
        _installed = True
        os.register_at_fork(before=_remember_forking_process)


def _remember_forking_process():
    global _forking_pid
    _forking_pid = os.getpid()


def die_with_parent():
    """Called in a new actor's process: SIGKILL this process when its creator dies."""
    if not _installed:
        return
    if not processes.die_with_parent(signal.SIGKILL):
        log.warning("no parent-death signal here: this actor outlives its creator")
    elif os.getppid() != _forking_pid:  # the creator died between the fork and the prctl
        os.kill(os.getpid(), signal.SIGKILL)
