"""Child processes that `serve` (and the tests) own: start them, wait for them, stop them all.

Each child runs in its own process group (so the whole group, grandchildren included,
can be stopped) and gets SIGTERM if its parent dies (PR_SET_PDEATHSIG), so no orphan
outlives a killed parent.
"""
import ctypes
import ipaddress
import os
import random
import signal
import socket
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1


def die_with_parent(signum=signal.SIGTERM):
    """Have the kernel send `signum` to this process when its parent dies. False where it cannot
    (not Linux): the parent's own stop() still cleans up."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except OSError:
        return False


def raise_open_file_limit():
    """Every actor costs the admin ~3 descriptors and every socket one: take the hard limit."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _pids():
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _stat(pid):
    """The fields of /proc/<pid>/stat after the command's name (state, ppid, pgrp, session, ...),
    or None once the process is gone."""
    try:
        text = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def session_of(pid):
    stat = _stat(pid)
    return int(stat[3]) if stat else None


def parent_of(pid):
    stat = _stat(pid)
    return int(stat[1]) if stat else None


def alive(pid):
    """Running (a zombie nobody reaped yet is not)."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def listening_sockets():
    """{socket inode: (address, port)} of every listening TCP socket on this machine (/proc)."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A":
                address, port = fields[1].rsplit(":", 1)
                found[f"socket:[{fields[9]}]"] = (_proc_address(address), int(port, 16))
    return found


def _proc_address(hex_address):
    """/proc/net/tcp's address: the kernel's bytes in hex, 32-bit words in host order."""
    raw = bytes.fromhex(hex_address)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)) if sys.byteorder == "little" else raw
    return str(ipaddress.ip_address(raw))


def sockets_of(pid, sockets):
    """The entries of `sockets` (from listening_sockets) that process `pid` holds open."""
    try:
        return [sockets[link] for link in (os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
                if link in sockets]
    except OSError:
        return []


def listening_pids(port):
    """Processes holding a listening TCP socket on `port`, found through /proc."""
    sockets = {inode: where for inode, where in listening_sockets().items() if where[1] == port}
    return {pid for pid in (_pids() if sockets else []) if sockets_of(pid, sockets)}


def descendants(pid):
    """Every live process below `pid` (children, their children, ...)."""
    children = {}
    for other in _pids():
        children.setdefault(parent_of(other), []).append(other)
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def usage(pid):
    """(CPU seconds, resident bytes, open file descriptors) of a process, or None once it is gone."""
    stat = _stat(pid)
    try:
        pages = int(open(f"/proc/{pid}/statm").read().split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError, IndexError):
        return None
    if stat is None:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(stat[11]) + int(stat[12])) / ticks, pages * os.sysconf("SC_PAGE_SIZE"), fds


def session_pids(sessions):
    """Every live process of these sessions."""
    return [pid for pid in _pids() if session_of(pid) in sessions]


def kill_sessions(sessions, timeout_s=5, signals=(signal.SIGTERM, signal.SIGKILL)):
    """SIGTERM, then SIGKILL, every process of these sessions (never our own). With
    signals=(SIGKILL,) a whole actor node dies at once, as when its machine is lost."""
    sessions = set(sessions) - {None, os.getsid(0)}
    for signum in signals:
        members = session_pids(sessions)
        for pid in members:
            try:
                os.kill(pid, signum)
            except OSError:
                pass
        deadline = time.monotonic() + timeout_s
        while members and time.monotonic() < deadline:
            members = [pid for pid in members if session_of(pid) in sessions and alive(pid)]
            time.sleep(0.05)


def actor_system_sessions(admin_port):
    """Thespian's admin leaves its starter's session (setsid) and forks the actors from there,
    so stopping the node's process group misses them if the node could not shut its system
    down (killed, or stuck). Note the admin's session once it listens; end it at the stop,
    even if the admin itself died meanwhile and left actors behind."""
    return {session_of(pid) for pid in listening_pids(admin_port)} - {None}


def port_free(host, port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


# Ports handed out below Linux's ephemeral range (32768-60999): a port picked by binding to 0
# comes from that range, and between the pick and its use an actor process's or a client's
# own ephemeral socket could take it (it happened: a gateway found its port held by an actor
# of the node started just before). For tests and benchmarks, which start many processes.
PORT_RANGE = (20000, 32768)
_handed_out = set()


def free_port():
    for _ in range(1000):
        port = random.randrange(*PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {PORT_RANGE}")


def require_free(host, port, what, variable):
    if not port_free(host, port):
        raise SystemExit(f"error: port {port} on {host} ({what}) is already in use; "
                         f"stop what holds it or choose another port with {variable}=...")


def port_listening(host, port, timeout_s=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_until(condition, timeout_s, what, interval_s=0.1, process=None):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process is not None and process.poll() is not None:
            raise SystemExit(f"error: {what} exited with status {process.returncode} while starting")
        if time.monotonic() > deadline:
            raise SystemExit(f"error: {what} did not become ready within {timeout_s:.0f} s")
        time.sleep(interval_s)


class Supervisor:
    def __init__(self):
        self.children = []  # (name, Popen), in start order

    def start(self, name, argv, env=None, **popen_options):
        process = subprocess.Popen(argv, env=env, start_new_session=True, preexec_fn=die_with_parent,
                                   **popen_options)
        self.children.append((name, process))
        return process

    def exited(self):
        """(name, returncode) of the first child that stopped, or None."""
        for name, process in self.children:
            if process.poll() is not None:
                return name, process.returncode
        return None

    def stop_all(self, timeout_s=15):
        """Stop children in reverse start order: gateway before actors before database."""
        for name, process in reversed(self.children):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    pass
            # Whatever the child left in its process group goes too (Thespian's actors are
            # in a session of their own: see actor_system_sessions).
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            process.wait()
        self.children.clear()
