"""A faster selector for Thespian's TCP transport.

Thespian's TCP transport builds a new selector on every loop and registers every open
socket in it (thespian/system/transport/TCPTransport.py, "creates selector on each loop").
With the default epoll selector that is a system call and a key object per socket per loop:
with a socket per online member, a gateway's bridge spent ~10 ms a loop at 1,000 members
(measured by scripts/bench_presence.py). A poll() set built per loop costs far less, and,
rebuilt every time like the original, it cannot go stale when a descriptor is reused.

`install()` swaps the selector class Thespian's transport module uses; call it before the
actor system starts (the node: inherited by every actor process it forks; the gateway:
before its bridge starts).
"""
import errno
import select
import selectors
import types

_READ, _WRITE = select.POLLIN, select.POLLOUT


class _Key:
    __slots__ = ("fd",)

    def __init__(self, fd):
        self.fd = fd


class PollSetSelector:
    """The part of the selectors API Thespian's transport uses, over one poll() call."""

    def __init__(self):
        self._masks = {}

    def register(self, fd, events):
        mask = (_READ if events & selectors.EVENT_READ else 0) | (_WRITE if events & selectors.EVENT_WRITE else 0)
        self._masks[fd] = self._masks.get(fd, 0) | mask

    def select(self, timeout=None):
        poller = select.poll()
        for fd, mask in self._masks.items():
            poller.register(fd, mask)
        timeout_ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
        ready = []
        for fd, event in poller.poll(timeout_ms):
            if event & select.POLLNVAL:
                # epoll refuses a bad descriptor at register(); Thespian relies on that error
                # to find and drop it, so say so the same way.
                raise OSError(errno.EBADF, "bad file descriptor in the poll set")
            events = 0
            # As selectors.PollSelector does: an error or hang-up wakes readers and writers.
            if event & ~_WRITE:
                events |= selectors.EVENT_READ
            if event & ~_READ:
                events |= selectors.EVENT_WRITE
            ready.append((_Key(fd), events & self._wanted(fd)))
        return ready

    def _wanted(self, fd):
        mask = self._masks[fd]
        return (selectors.EVENT_READ if mask & _READ else 0) | (selectors.EVENT_WRITE if mask & _WRITE else 0)

    def close(self):
        self._masks = {}


def install():
    from thespian.system.transport import TCPTransport
    if getattr(TCPTransport.selectors, "DefaultSelector", None) is PollSetSelector:
        return
    TCPTransport.selectors = types.SimpleNamespace(DefaultSelector=PollSetSelector,
                                                   EVENT_READ=selectors.EVENT_READ,
                                                   EVENT_WRITE=selectors.EVENT_WRITE)
