"""A YAML spec's cost grows linearly with its size: reading, checking and planning a spec of 10× the edges
takes about 10× the time (quadratic work would take 100×).

Times, on this machine in one run, the pure steps the spec endpoints run in worker threads (api.spec_service):
`parse_spec` (PyYAML, then the JSON and duplicate-edge checks), `to_graph` + `validate_graph`, and `plan`, for
a spec of `--edges` edges and one of ten times as many. Prints each step's seconds and the large / small ratio.
`plan` takes milliseconds, where allocation and cache effects move its ratio (20-35 measured here, its calls
counted linear by cProfile); the parse is what costs.

    .venv/bin/python -m bench.specs --edges 1000
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from docflow.graph import validate_graph  # noqa: E402
from docflow.models import Graph  # noqa: E402
from docflow.spec import API_VERSION, parse_spec, plan, to_graph  # noqa: E402


def _spec(edges: int) -> str:
    """Two blocks and `edges` edges between handles that do not exist: every step sees every edge."""
    wired = [
        {"from": {"block": "a", "handle": f"output-json-{i}"}, "to": {"block": "b", "handle": f"input-json-{i}"}}
        for i in range(edges)
    ]
    blocks = {"a": {"type": "start_json"}, "b": {"type": "merge_dicts"}}
    document = {"apiVersion": API_VERSION, "kind": "Workflow", "metadata": {"name": "bench"}}
    return str(yaml.safe_dump({**document, "spec": {"blocks": blocks, "edges": wired}}))


def _seconds(edges: int) -> dict[str, float]:
    text = _spec(edges)
    began = time.perf_counter()
    spec = parse_spec(text, "bench")
    parsed = time.perf_counter()
    ids = iter(range(edges))
    graph = to_graph(spec, "wf_bench", "proj_bench", Graph(), datetime.now(UTC), lambda: f"edge_{next(ids)}")
    validate_graph(graph)
    checked = time.perf_counter()
    plan(spec, None, {})
    planned = time.perf_counter()
    return {"parse": parsed - began, "check": checked - parsed, "plan": planned - checked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=1000)
    args = parser.parse_args()
    small, large = _seconds(args.edges), _seconds(args.edges * 10)
    print(f"spec of {args.edges} edges and of {args.edges * 10}:")
    for step in small:
        ratio = large[step] / small[step] if small[step] else float("nan")
        print(f"  {step:<6} {small[step]:8.3f} s {large[step]:8.3f} s   ratio {ratio:5.1f} (linear: about 10)")


if __name__ == "__main__":
    main()
