"""In-process cost of a miss's compaction: µs per step on the bench's stub bodies.

    python bench/compaction.py [--runs 7] [--number 2000] [--root CHECKOUT]

For each stub body (bench/stub_bodies.py: `short`, `realistic`) it times, median of
`--runs` runs of `--number` calls each: `Operation.compact` of a 10-result episode search
(validation, text cleaning and all), its parts (validation alone; `answers.finish`, as
validation plus finish minus validation), `encode_answer`, and `plain_text` per
description (limit 300) and per title (limit 200), the 10 and 30 strings a search answer
cleans. `--root` times another checkout's `app` (a baseline) on the same bodies. Run it
under the bench lock (`flock /work/bench.lock ...`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _median_us(call: Callable[[], object], runs: int, number: int) -> float:
    return statistics.median(timeit.repeat(call, repeat=runs, number=number)) / number * 1e6


def _measure(name: str, body: bytes, app: dict[str, Any], runs: int, number: int) -> None:
    answers, operation, plain_text = app["answers"], app["operation"], app["plain_text"]
    results = json.loads(body)["results"]
    descriptions = [r["description_original"] for r in results]
    titles = [r["title_original"] for r in results]
    titles += [r["podcast"][f"{k}_original"] for r in results for k in ("title", "publisher")]
    cls = operation.answer
    if hasattr(answers, "read"):  # answers read into dicts through the model's mirror
        validate = (answers._READERS.get(cls) or answers._reader_of(cls)).adapter.validate_json

        def finish(values: Any) -> Any:
            return answers.finish(values, cls)

        def encode(answer: Any) -> bytes:
            return bytes(answers.encode_answer(answer, cls))
    else:  # a checkout from before (a baseline): into the models themselves
        validate, finish, encode = cls.model_validate_json, answers.finish, answers.encode_answer
    finished = operation.compact(body)
    timed = {
        "Operation.compact": lambda: operation.compact(body),
        "  validation": lambda: validate(body),
        "  validation + finish": lambda: finish(validate(body)),
        "encode_answer": lambda: encode(finished),
        "compact + encode_answer": lambda: encode(operation.compact(body)),
    }
    micros = {label: _median_us(call, runs, number) for label, call in timed.items()}
    micros["  finish"] = micros.pop("  validation + finish") - micros["  validation"]
    per_description = _median_us(
        lambda: [plain_text(d, 300) for d in descriptions], runs, number
    ) / len(descriptions)
    per_title = _median_us(lambda: [plain_text(t, 200) for t in titles], runs, number) / len(titles)
    micros["plain_text per description (300)"] = per_description
    micros["plain_text per title (200)"] = per_title
    print(f"\n{name} ({len(body):,} bytes; {len(descriptions)} descriptions, {len(titles)} titles)")
    for label, value in micros.items():
        print(f"  {label:<36} {value:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose app to time")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    from stub_bodies import BODIES, search_answer

    bodies = {name: search_answer(name) for name in BODIES}  # with this checkout's samples
    for module in [m for m in sys.modules if m == "app" or m.startswith("app.")]:
        del sys.modules[module]
    sys.path.insert(0, str(args.root.resolve()))
    app = {
        "answers": importlib.import_module("app.answers"),
        "operation": importlib.import_module("app.connectors.podcasts.operations").operation_named(
            "searchEpisodes"
        ),
        "plain_text": importlib.import_module("app.text").plain_text,
    }
    print(f"{app['answers'].__file__}: median of {args.runs} runs x {args.number}, µs a call")
    for name, body in bodies.items():
        _measure(name, body, app, args.runs, args.number)


if __name__ == "__main__":
    main()
