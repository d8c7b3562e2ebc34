"""One log line format for every process: the CLI's commands, the gateway, the node and each
actor process of the node. Thespian sends its actors' records to a logger process of its own,
which writes them as `actor_log_config` says; without it that process writes
`LEVEL:name:message` with no time or process and drops everything under WARNING. The actors
that block on I/O write theirs straight to the node's stderr instead (`straight_to_stderr`)."""
import logging
import sys

FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"


def configure(level):
    """This process's own records."""
    logging.basicConfig(level=level, format=FORMAT)


def actor_log_config(level):
    """Thespian's `logDefs`: its logger process writes every actor's records to its standard
    error (the node's log) at `level` and above, in FORMAT (the record keeps the actor's pid)."""
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"line": {"format": FORMAT}},
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "line",
                                    "stream": "ext://sys.stderr"}},
            "root": {"level": level, "handlers": ["stderr"]}}


def straight_to_stderr(level, logger):
    """In an actor process of a node that blocks on I/O (the adapters, the money actors): its
    records go to its standard error, the node's log inherited at the fork, as they are made.
    Through Thespian's logger each record is a message that waits for the actor's transport:
    the payments adapter retrying a database that was down said so only once it came back.
    Thespian installs its forwarding root twice in a new actor process (the module loggers
    created in between hang under the first), so both are given the direct handler: the root
    above `logger` (the actor's module logger) and the current one. Lines stay whole (each is
    one write, well under a pipe's atomic size). Elsewhere (an actor in a test's own process)
    nothing changes."""
    from thespian.system.logdirector import ThespianLogForwarder
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(level)
    top = logger
    while top.parent is not None:
        top = top.parent
    for root in {id(r): r for r in (top, logging.getLogger())}.values():
        if isinstance(root, ThespianLogForwarder):
            root.handlers = [handler]
