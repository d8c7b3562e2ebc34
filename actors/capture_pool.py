"""PayPal calls of the payments adapter, a few at once: the SDK blocks, so each call runs on a
thread of this pool (each thread with a PayPal client of its own, since the SDK's clients are not
made to be shared) and its answer waits here until the actor collects it on its own thread.

Nothing here touches the actor: it submits work and reads finished answers; every decision on an
answer (book, refuse, find out) stays with the actor, one answer at a time.
"""
import queue
import threading


class CapturePool:
    """`size` daemon threads (started on first use), each calling `make_client()` once."""

    def __init__(self, make_client, size):
        self.make_client, self.size = make_client, size
        self.jobs, self.answers = queue.Queue(), queue.Queue()
        self.threads = []
        self.in_flight = 0

    def submit(self, key, call):
        """Run `call(client)` on a pool thread; its answer comes back from `finished` under `key`."""
        if len(self.threads) < min(self.size, self.in_flight + 1):
            thread = threading.Thread(target=self._work, name=f"paypal-{len(self.threads)}", daemon=True)
            self.threads.append(thread)
            thread.start()
        self.in_flight += 1
        self.jobs.put((key, call))

    def finished(self):
        """[(key, answer, error)] of every call done since the last look: error is the exception
        the call raised (answer None), or None."""
        done = []
        while True:
            try:
                done.append(self.answers.get_nowait())
            except queue.Empty:
                self.in_flight -= len(done)
                return done

    def _work(self):
        client = self.make_client()
        while True:
            key, call = self.jobs.get()
            try:
                self.answers.put((key, call(client), None))
            except Exception as error:  # handed to the actor, which decides what it means
                self.answers.put((key, None, error))
