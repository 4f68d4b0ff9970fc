"""The real local model's cost per email: llama.cpp serving SmolLM2-135M on this machine.

Starts the bundled model with `LocalModelServer` (the `local` extra), then runs routine emails
(labelled to be drafted) and must-escalate emails (legal, safety, privacy, ... labels) of the
demo eval set through the real graph, and prints per group: model calls, input and output
tokens as the server reports them, and seconds per email, next to the rules model.

    python benchmarks/bench_local_model.py [--per-group 5] [--threads N]
"""

from __future__ import annotations

import argparse
import time

from mediavault.agent.models.local_server import MODEL_ALIAS, LocalModelServer
from mediavault.evals.dataset import DEMO_DATASET, Dataset, load_dataset
from mediavault.evals.runner import EvalOptions, run_eval
from mediavault.evals.scoring import score_run
from mediavault.policies import policy_rules


def _groups(per_group: int) -> dict[str, Dataset]:
    dataset = load_dataset(DEMO_DATASET)
    escalate_codes = {code for code, route in policy_rules().reason_codes.items()
                      if route == "escalate"}
    routine = [c for c in dataset.cases if c.expect.route == "draft"][:per_group]
    must_escalate = [c for c in dataset.cases
                     if c.expect.reason_code in escalate_codes][:per_group]
    return {
        "routine": dataset.model_copy(update={"name": "routine", "cases": routine}),
        "must-escalate": dataset.model_copy(update={"name": "must-escalate",
                                                     "cases": must_escalate}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-group", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    import os

    groups = _groups(args.per_group)
    print(f"{'model':<18} {'group':<14} {'emails':>6} {'calls/email':>11} "
          f"{'in tok/email':>12} {'out tok/email':>13} {'s/email':>8}")
    with LocalModelServer(threads=args.threads) as server:
        os.environ["OPENAI_BASE_URL"] = server.base_url
        os.environ.setdefault("MEDIAVAULT_MODEL_TIMEOUT", "300")
        # Without a cap a 135M model can ramble for thousands of tokens (minutes) per answer.
        os.environ.setdefault("MEDIAVAULT_MODEL_MAX_TOKENS", "384")
        for model in ("rules", f"openai:{MODEL_ALIAS}"):
            for name, group in groups.items():
                started = time.perf_counter()
                run = run_eval([group], EvalOptions(model=model))
                seconds = time.perf_counter() - started
                summary = score_run(run).summary
                emails = len(group.cases)
                print(f"{model:<18} {name:<14} {emails:>6} "
                      f"{summary['model_calls_mean']:>11.1f} "
                      f"{summary['input_tokens_mean']:>12.0f} "
                      f"{summary['output_tokens_mean']:>13.0f} {seconds / emails:>8.2f}")


if __name__ == "__main__":
    main()
