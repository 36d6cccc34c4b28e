"""Run the benchmarks and print the ratios against their anchors as a markdown table.

    python bench/report.py                 # run every benchmark, then print the table
    python bench/report.py -k median       # pass pytest selection arguments through
    python bench/report.py --json F.json   # print the table for an earlier --benchmark-json run

Ratios use medians measured in the same run (anchor median / ours median), since the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict


def run_benchmarks(pytest_args: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.json")
        here = os.path.dirname(os.path.abspath(__file__))
        cmd = [sys.executable, "-m", "pytest", here, "-q", "-p", "no:cacheprovider",
               f"--benchmark-json={path}", "--benchmark-min-rounds=20", *pytest_args]
        subprocess.run(cmd, check=True)
        with open(path) as f:
            return json.load(f)


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.4f} ms" if seconds < 1e-2 else f"{seconds * 1e3:.2f} ms"


def fmt_value(value: float, info: dict) -> str:
    """A row's measure: the median time, or an explicit ``value`` with its ``unit`` (e.g. peak RSS in MB)."""
    return f"{value:.1f} {info['unit']}" if "unit" in info else fmt_ms(value)


def _interleaved(info: dict) -> str:
    """The ours/anchor ratio measured in alternating calls, when the benchmark recorded one."""
    return f" (interleaved {info['interleaved_ratio']:.3f}x)" if "interleaved_ratio" in info else ""


def table(results: dict) -> str:
    """Rows compare "ours" with the "anchor" benchmarks of the same target.

    Optional extra_info: ``goal`` = the anchor/ours ratio to reach (higher is better); ``goal_max`` = the
    ours/anchor ratio not to exceed (overheads: lower is better), shown as "ours/anchor" (``goal_max=None``:
    an overhead reported without a goal); ``value`` with
    ``unit`` = a measured quantity compared instead of the median time (e.g. peak RSS)."""
    rows = defaultdict(dict)
    for bench in results["benchmarks"]:
        info = bench.get("extra_info", {})
        if "target" not in info:
            continue
        entry = (bench["name"], info["value"] if "value" in info else bench["stats"]["median"], info)
        rows[info["target"]].setdefault(info["role"], []).append(entry)
    lines = ["| target | anchor | anchor median | pyguard median | measured | goal | met |",
             "|---|---|---|---|---|---|---|"]
    for target, roles in rows.items():
        for _name, ours, info in roles.get("ours", []):
            if "goal_gbps" in info:
                gbps = info["bytes"] / ours / 1e9
                goal = info["goal_gbps"]
                lines.append(f"| {target} | memory speed | - | {fmt_ms(ours)} | {gbps:.1f} GB/s | "
                             f">= {goal} GB/s | {'yes' if gbps >= goal else 'NO'} |")
            for anchor_name, anchor, anchor_info in roles.get("anchor", []):
                if "goal_max" in info:
                    overhead, limit = ours / anchor, info["goal_max"]
                    goal_s, met = ("", "") if limit is None else (f"<= {limit}x", "yes" if overhead <= limit
                                                                  else "NO")
                    lines.append(f"| {target} | {anchor_name.removeprefix('test_')} | "
                                 f"{fmt_value(anchor, anchor_info)} | {fmt_value(ours, info)} | "
                                 f"{overhead:.3f}x ours/anchor{_interleaved(info)} | {goal_s} | {met} |")
                    continue
                ratio = anchor / ours
                goal = info.get("goal")
                met = "" if goal is None else ("yes" if ratio >= goal else "NO")
                goal_s = "" if goal is None else f">= {goal}x"
                lines.append(f"| {target} | {anchor_name.removeprefix('test_')} | {fmt_ms(anchor)} | "
                             f"{fmt_ms(ours)} | {ratio:.2f}x | {goal_s} | {met} |")
        if not roles.get("ours"):  # reference timings with nothing of ours to compare (yet)
            for anchor_name, anchor, _ in roles.get("anchor", []):
                name = anchor_name.removeprefix("test_")
                lines.append(f"| {target} | {name} | {fmt_ms(anchor)} | - | - | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="read an existing pytest-benchmark JSON file instead of running")
    args, rest = parser.parse_known_args()
    if args.json:
        with open(args.json) as f:
            results = json.load(f)
    else:
        results = run_benchmarks(rest)
    print(table(results))


if __name__ == "__main__":
    main()
