"""Where the actor transport listens: every Thespian socket on one configured address.

Thespian's TCP transport unpickles whatever a connection sends, with no authentication, and
binds the socket of every "external" address it makes (the admin's, each actor's, each
outside context's, a gateway's bridge included) to all of the machine's addresses: `('',
port)` in thespian/system/transport/IPBase.py. Anyone who reaches one of those ports can make
the node run code (a pickle sent to the admin made it run os.mkdir). So here every such socket
binds to exactly the address it advertises, and that address is `settings.actor_host`:
127.0.0.1 unless several machines form a convention, then this machine's private address
behind a firewall (docs/operating.md, "The actor network").

`install(host)` runs in every process that starts or joins an actor system, before it does:
the node (its admin and every actor are forked from it and inherit it), and the gateways, the
CLI and the tests, which join as outside clients through `outside_system`.
"""
import os

from interkanect.config import check_actor_host

# Thespian's own variable for the address an actor system advertises (IPBase.py).
BASE_ADDRESS_ENV = "THESPIAN_BASE_IPADDR"


def install(host):
    """Make every Thespian socket of this process (and of those it forks) bind to `host` only."""
    check_actor_host(host)
    os.environ[BASE_ADDRESS_ENV] = host
    from thespian.system.transport import IPBase
    IPBase.thisSystem.add_local_addr(host)
    if getattr(IPBase.IPActorAddress.__init__, "binds_where_advertised", False):
        return
    thespian_init = IPBase.IPActorAddress.__init__

    def init(self, *args, **kwargs):
        thespian_init(self, *args, **kwargs)
        if self.bindname[0] == "":  # Thespian's "every address": bind where we tell others to connect
            self.bindname = (self.sockname[0], self.bindname[1])
    init.binds_where_advertised = True
    IPBase.IPActorAddress.__init__ = init


def outside_system(settings):
    """This process joins the running actor node at `settings.admin_port` as an outside client.
    Never call shutdown() on what it returns: that would stop the node."""
    from thespian.actors import ActorSystem

    from actors import transport_tuning
    transport_tuning.install()
    install(settings.actor_host)
    return ActorSystem("multiprocTCPBase", capabilities={"Admin Port": settings.admin_port}, transientUnique=True)
