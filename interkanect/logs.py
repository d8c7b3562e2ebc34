"""One log line format for every process: the CLI's commands, the gateway, the node and each
actor process of the node. Thespian sends its actors' records to a logger process of its own,
which writes them as `actor_log_config` says; without it that process writes
`LEVEL:name:message` with no time or process and drops everything under WARNING."""
import logging

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
