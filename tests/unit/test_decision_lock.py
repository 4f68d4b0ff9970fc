"""One lock for a review decision: re-entrant for its holder, exclusive for everyone else."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from mediavault.agent.ops.decision_lock import one_decision_at_a_time
from mediavault.graph.context import Context


def test_the_holder_may_take_it_again_and_other_threads_wait(tmp_path: Path) -> None:
    context = Context(home=tmp_path)
    order: list[str] = []
    with one_decision_at_a_time(context, "email-a"):
        with one_decision_at_a_time(context, "email-a"):  # the console, then the desk
            order.append("inner")

        def other() -> None:
            with one_decision_at_a_time(context, "email-a"):
                order.append("other")

        waiting = threading.Thread(target=other)
        waiting.start()
        time.sleep(0.2)
        order.append("outer done")  # still held after the inner block released
    waiting.join(timeout=5)
    assert order == ["inner", "outer done", "other"]


def test_decisions_on_different_emails_do_not_wait(tmp_path: Path) -> None:
    context = Context(home=tmp_path)
    done = threading.Event()
    with one_decision_at_a_time(context, "email-a"):

        def other() -> None:
            with one_decision_at_a_time(context, "email-b"):
                done.set()

        threading.Thread(target=other).start()
        assert done.wait(timeout=5)


def test_another_process_waits_for_the_lock(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from mediavault.agent.ops.decision_lock import one_decision_at_a_time\n"
        "from mediavault.graph.context import Context\n"
        "Path(sys.argv[2]).touch()\n"
        "with one_decision_at_a_time(Context(home=sys.argv[1]), 'email-a'):\n"
        "    print(time.time())\n"
    )
    context, ready = Context(home=tmp_path), tmp_path / "ready"
    with one_decision_at_a_time(context, "email-a"):
        child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(ready)],
                                 stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the child is trying the lock now
        released = time.time()
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0 and ready.exists()
    assert float(out) >= released
