"""An actor node: a Thespian multiprocTCPBase system on this machine, running until SIGINT or
SIGTERM shuts it down (its actor processes outlive this one otherwise).

The first node of a deployment leads the convention and runs the member directory; every
other node joins it (`--join HOST:PORT`) and hosts the member shards the directory places
there (docs/operating.md)."""
import logging
import signal
import threading

from thespian.actors import ActorSystem

from actors import actor_transport, convention, lifelines, node_metrics, process_memory, transport_tuning
from actors.directory import DIRECTORY_NAME, Directory
from actors.messages import Configure, Shards

log = logging.getLogger(__name__)


def start(settings):
    # All before the system forks its admin and actors, which inherit them.
    transport_tuning.install()
    actor_transport.install(settings.actor_host)
    process_memory.install()
    lifelines.install()
    convention.install_timers(settings.policy)
    system = ActorSystem("multiprocTCPBase", capabilities=convention.capabilities(settings), transientUnique=True)
    if settings.join:
        return system  # the leader's directory places shards here once the convention has us
    directory = system.createActor(Directory, globalName=DIRECTORY_NAME)
    # The directory answers once the shards are placed: when `member_nodes` nodes are in.
    answer = system.ask(directory, Configure(settings), settings.policy.node_wait_s + 30)
    if not isinstance(answer, Shards) or not answer.addresses:
        system.shutdown()
        raise SystemExit(f"the member directory did not start (answer: {answer!r})")
    return system


def run(settings):
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    system = start(settings)
    node_metrics.serve(settings)
    role = f"joined {settings.join}" if settings.join else "convention leader"
    log.info("actor node %s ready on %s:%d (%s)", convention.node_name(settings), settings.actor_host,
             settings.admin_port, role)
    print(f"actor node ready on {settings.actor_host}:{settings.admin_port} ({role})", flush=True)
    try:
        stop.wait()
    finally:
        system.shutdown()
        log.info("actor node stopped")
