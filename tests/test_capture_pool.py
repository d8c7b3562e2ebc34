"""The payments adapter's PayPal calls off its thread (actors/capture_pool.py): every call
answered once under its key, failures handed back rather than lost, no more threads than asked."""
import threading

from actors.capture_pool import CapturePool
from tests.kit.waiting import wait_for

ANSWER_TIMEOUT_S = 5


def collected(pool, count):
    """The pool's first `count` answers, waited for (bounded)."""
    done = []

    def all_answered():
        done.extend(pool.finished())
        return len(done) >= count
    wait_for(all_answered, f"{count} answers", ANSWER_TIMEOUT_S, poll_s=0.001)
    return done


def test_calls_run_at_once_each_answered_once_under_its_key():
    both_started = threading.Barrier(2, timeout=ANSWER_TIMEOUT_S)   # fails if they ran one after the other
    pool = CapturePool(lambda: "client", size=2)
    pool.submit("a", lambda client: (both_started.wait(), f"{client}:a")[1])
    pool.submit("b", lambda client: (both_started.wait(), f"{client}:b")[1])
    assert sorted(collected(pool, 2)) == [("a", "client:a", None), ("b", "client:b", None)]
    assert pool.in_flight == 0 and pool.finished() == []


def test_a_failure_comes_back_as_the_error_of_its_key():
    pool = CapturePool(lambda: None, size=1)
    refusal = ValueError("PayPal said no")
    pool.submit("order", lambda client: (_ for _ in ()).throw(refusal))
    assert collected(pool, 1) == [("order", None, refusal)]


def test_no_more_threads_than_its_size_each_with_a_client_of_its_own():
    clients = []
    pool = CapturePool(lambda: clients.append(object()) or clients[-1], size=2)
    for index in range(6):
        pool.submit(index, lambda client: id(client))
    answers = collected(pool, 6)
    assert len(pool.threads) == 2 and len(clients) <= 2
    assert sorted(key for key, _, _ in answers) == list(range(6))
    assert {answer for _, answer, _ in answers} <= {id(client) for client in clients}
