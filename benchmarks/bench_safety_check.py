"""What the safety check costs per email: reading what a reader sees, then the risk rules.

For a few typical emails prints the median and 95th percentile, in milliseconds, of:

* rules    -- ``assess_risk`` on the subject, new text, quoted history and extra parts;
* reader   -- reading a raw multipart message (HTML rendered, parts and attachments read);
* language -- identifying the language of the new text (py3langid);
* total    -- reader + rules + language, as the graph pays it for a raw message;

as median and 95th percentile wall time and mean CPU time.

The target is under 5 ms for a typical email. Run: ``python benchmarks/bench_safety_check.py
[--runs N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from mediavault.agent.mail.mailboxes import email_from_bytes
from mediavault.graph.safety.reader_text import split_quoted_history
from mediavault.graph.safety.rules import assess_risk, risk_rules
from mediavault.graph.safety.what_a_reader_sees import reader_parts
from mediavault.tools.text_language import detect_language

PLAIN = (
    "Hello,\n\nI rented IRON KINGDOM on Friday and returned it through the drop slot on Sunday "
    "night, but my account shows a late fee of $2.00. Could you check when it was scanned in? "
    "I have the receipt from the petrol station across the road showing I was there at 9pm.\n\n"
    "Thanks,\nGordon Pell\n\n"
    "On Mon, 2 Mar 2026 at 09:14, MediaVault Support <support@mediavault.example> wrote:\n"
    "> Your rental of IRON KINGDOM is due back on Saturday.\n"
)
HTML = (
    "<html><head><title>My rental</title><style>p.note::after{content:' thanks'}</style>"
    "</head><body><p>Hello,</p><p>I rented <b>IRON KINGDOM</b> on Friday and returned it "
    "through the drop slot on Sunday night, but my account shows a late fee.</p>"
    "<p class='note'>Could you check when it was scanned in?</p>"
    "<img src='cid:receipt' alt='photo of my receipt'><p>Gordon</p></body></html>"
)
RAW = (
    "From: Gordon Pell <gpell@example.com>\r\nTo: support@mediavault.example\r\n"
    "Subject: Late fee on Iron Kingdom\r\nMessage-ID: <bench-1@example.com>\r\n"
    "Date: Mon, 02 Mar 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
    '--outer\r\nContent-Type: multipart/alternative; boundary="alt"\r\n\r\n'
    f"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{PLAIN}\r\n"
    f"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{HTML}\r\n--alt--\r\n"
    "--outer\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Disposition: attachment; filename=notes.txt\r\n\r\n"
    "Rented Friday, returned Sunday night through the slot.\r\n"
    "--outer\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=r.png\r\n"
    "\r\niVBORw0KGgo=\r\n--outer--\r\n"
).encode()


def _time(function: Callable[[], object], runs: int) -> tuple[float, float, float]:
    """Median and p95 wall time, and mean CPU time, in milliseconds.

    CPU time is what the check costs; wall time also counts waiting for a busy machine.
    """
    samples = []
    cpu_started = time.process_time()
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    cpu = (time.process_time() - cpu_started) * 1000 / runs
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))], cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    runs = parser.parse_args().runs
    risk_rules()  # compiled once per process, not per email
    detect_language("warm up the language model once")
    inbound = email_from_bytes(RAW)
    email = inbound.model_dump(mode="json")
    fresh, quoted = split_quoted_history(inbound.body)
    parts = reader_parts(email)

    def rules() -> object:
        return assess_risk(inbound.subject, fresh, quoted=quoted, parts=parts)

    def reader() -> object:
        return email_from_bytes(RAW)

    def language() -> object:
        return detect_language(f"{inbound.subject}\n{fresh}"[:2000])

    def total() -> object:
        read = email_from_bytes(RAW)
        new, history = split_quoted_history(read.body)
        detect_language(f"{read.subject}\n{new}"[:2000])
        return assess_risk(read.subject, new, quoted=history,
                           parts=reader_parts(read.model_dump(mode="json")))

    print(f"typical email: {len(inbound.body)} body characters, {len(parts)} extra part(s), "
          f"{runs} runs")
    print(f"{'step':<10} {'median ms':>10} {'p95 ms':>10} {'cpu ms':>10}")
    for name, function in (("rules", rules), ("reader", reader), ("language", language),
                           ("total", total)):
        median, p95, cpu = _time(function, runs)
        print(f"{name:<10} {median:>10.3f} {p95:>10.3f} {cpu:>10.3f}")
    print("The safety check proper is rules + language; the reader is ingest's MIME parsing.")


if __name__ == "__main__":
    main()
