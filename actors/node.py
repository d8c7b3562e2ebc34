"""An actor node: a Thespian multiprocTCPBase system on this machine, with the member
directory configured, running until SIGINT or SIGTERM shuts it down (its actor processes
outlive this one otherwise)."""
import logging
import signal
import threading

from thespian.actors import ActorSystem

from actors import transport_tuning
from actors.directory import DIRECTORY_NAME, Directory
from actors.messages import Configure, Shards

log = logging.getLogger(__name__)


def start(settings):
    transport_tuning.install()  # before the system forks its admin and actors
    system = ActorSystem("multiprocTCPBase", capabilities={"Admin Port": settings.admin_port},
                         transientUnique=True)
    directory = system.createActor(Directory, globalName=DIRECTORY_NAME)
    answer = system.ask(directory, Configure(settings), 30)
    if not isinstance(answer, Shards) or not answer.addresses:
        system.shutdown()
        raise SystemExit(f"the member directory did not start (answer: {answer!r})")
    return system


def run(settings):
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    system = start(settings)
    log.info("actor node ready on admin port %d", settings.admin_port)
    print(f"actor node ready on admin port {settings.admin_port}", flush=True)
    try:
        stop.wait()
    finally:
        system.shutdown()
        log.info("actor node stopped")
