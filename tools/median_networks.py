"""Derive and verify the median selection networks used by csrc/median/networks.inc.

3x3, two vertically adjacent outputs at once (rows i-1..i+1 and i..i+2 share 6 values): sort the shared
rows' column pairs, merge them into a sorted 6, then for each output sort its own row of 3 and select
rank 4 of the merge (9 values); the merges are Batcher merges pruned to the output and greedily shrunk.
Checked with the 0-1 principle on all 2^12 inputs.

The 5x5 kernel works on sorted columns: every column of 5 is sorted once (shared by the 5 windows that
contain it), every pair of neighbouring sorted columns is merged once into a sorted 10 (shared by the two
windows that start at either of its columns), and a window is then A (sorted 10: columns j-2, j-1),
B (sorted 10: columns j, j+1) and C (sorted 5: column j+2). The rank-12 element of those 25 is selected by
a Batcher merge (A, B) then (AB, C), pruned to the comparators the output depends on, then shrunk
greedily (remove a comparator, keep the removal if the network is still correct).

Correctness is checked with the 0-1 principle: a min/max network selects rank k of every input iff it
does so for every 0-1 input. With sorted inputs a 0-1 list is fixed by its number of ones, so checking
every combination (11 * 11 * 6) is exhaustive.

    python tools/median_networks.py          # verify, print op counts and the C++ bodies
"""

from __future__ import annotations

import itertools
import random

import numpy as np

RANK = 12  # floor(25 / 2)


def batcher_merge(a: list, b: list) -> tuple[list, list]:
    """Comparators (min wire, max wire) merging sorted wire lists a and b; also the merged wire order."""
    n = 1
    while n < max(len(a), len(b)):
        n *= 2
    seq = list(a) + [None] * (n - len(a)) + list(b) + [None] * (n - len(b))  # None = +inf padding
    comps = []

    def compare(i, j):
        x, y = seq[i], seq[j]
        if y is None:
            return
        if x is None:  # +inf against a value: the value moves down, no work
            seq[i], seq[j] = y, None
            return
        comps.append((x, y))

    def merge(lo, count, r):
        step = r * 2
        if step < count:
            merge(lo, count, step)
            merge(lo + r, count, step)
            for i in range(lo + r, lo + count - r, step):
                compare(i, i + r)
        else:
            compare(lo, lo + r)

    merge(0, 2 * n, 1)
    return comps, [w for w in seq if w is not None]


def prune(comps: list, out) -> list:
    """Keep only the comparator halves (min and/or max) the output depends on."""
    needed, kept = {out}, []
    for x, y in reversed(comps):
        want_min, want_max = x in needed, y in needed
        if want_min or want_max:
            kept.append((x, y, want_min, want_max))
            needed |= {x, y}
    return kept[::-1]


def ops(kept: list) -> int:
    return sum(want_min + want_max for _, _, want_min, want_max in kept)


def sorted_01_inputs(lengths: dict) -> dict:
    combos = list(itertools.product(*[range(n + 1) for n in lengths.values()]))
    wires = {}
    for li, (name, n) in enumerate(lengths.items()):
        for r in range(n):
            wires[f"{name}{r}"] = np.array([r >= n - c[li] for c in combos])
    return wires


def selects(kept: list, wires: dict, out, rank: int) -> bool:
    w = dict(wires)
    for x, y, want_min, want_max in kept:
        a, b = w[x], w[y]
        if want_min:
            w[x] = a & b
        if want_max:
            w[y] = a | b
    ones = sum(v.astype(int) for v in wires.values())
    return bool(np.array_equal(w[out], ones >= len(wires) - rank))


def shrink(kept: list, wires: dict, out, rank: int) -> list:
    improved = True
    while improved:
        improved = False
        for i in range(len(kept)):
            trial = prune([(x, y) for x, y, _, _ in kept[:i] + kept[i + 1:]], out)
            if ops(trial) < ops(kept) and selects(trial, wires, out, rank):
                kept, improved = trial, True
                break
    return kept


def cpp(kept: list, out) -> str:
    lines = []
    for x, y, want_min, want_max in kept:
        if want_min and want_max:
            lines.append(f"    cx<O>({x}, {y});")
        elif want_min:
            lines.append(f"    {x} = O::mn({x}, {y});")
        else:
            lines.append(f"    {y} = O::mx({x}, {y});")
    lines.append(f"    return {out};")
    return "\n".join(lines)


# ---- 3x3, two outputs sharing rows i and i+1 ----
# Networks with register copies: an op is ("cx", lo_wire, hi_wire) or ("copy", new_wire, wire).

def prune_copies(net: list, outs: list) -> list:
    needed, kept = set(outs), []
    for op in reversed(net):
        if op[0] == "copy":
            if op[1] in needed:
                kept.append(op)
                needed.discard(op[1])
                needed.add(op[2])
            continue
        x, y = op[1], op[2]
        want_min, want_max = x in needed, y in needed
        if want_min or want_max:
            kept.append(("cx", x, y, want_min, want_max))
            needed |= {x, y}
    return kept[::-1]


def ops_of(kept: list) -> int:
    return sum(op[3] + op[4] for op in kept if op[0] == "cx")


def pair_inputs() -> dict:
    wires = [f"r{r}{c}" for r in range(4) for c in range(3)]
    combos = np.array(list(itertools.product((0, 1), repeat=12)), bool)
    return {w: combos[:, i] for i, w in enumerate(wires)}


def pair_selects(kept: list, wires: dict, outs: list) -> bool:
    w = dict(wires)
    for op in kept:
        if op[0] == "copy":
            w[op[1]] = w[op[2]]
            continue
        _, x, y, want_min, want_max = op
        a, b = w[x], w[y]
        if want_min:
            w[x] = a & b
        if want_max:
            w[y] = a | b
    for out, rows in zip(outs, ((0, 1, 2), (1, 2, 3))):
        ones = sum(wires[f"r{r}{c}"].astype(int) for r in rows for c in range(3))
        if not np.array_equal(w[out], ones >= 5):  # rank 4 of 9 is 1 iff at least 5 ones
            return False
    return True


def pair_network() -> tuple[list, list]:
    net = [("cx", f"r1{c}", f"r2{c}") for c in range(3)]  # shared column pairs
    pairs = [[f"r1{c}", f"r2{c}"] for c in range(3)]
    comps, four = batcher_merge(pairs[0], pairs[1])
    net += [("cx", x, y) for x, y in comps]
    comps, shared = batcher_merge(four, pairs[2])
    net += [("cx", x, y) for x, y in comps]
    outs = []
    for tag, row in (("u", 0), ("d", 3)):
        mine = [f"{tag}{w[1:]}" for w in shared]
        net += [("copy", m, w) for m, w in zip(mine, shared)]
        own = [f"r{row}{c}" for c in range(3)]
        comps, two = batcher_merge(own[:1], own[1:2])
        net += [("cx", x, y) for x, y in comps]
        comps, three = batcher_merge(two, own[2:])
        net += [("cx", x, y) for x, y in comps]
        comps, nine = batcher_merge(mine, three)
        net += [("cx", x, y) for x, y in comps]
        outs.append(nine[4])
    return net, outs


def shrink_pair(kept: list, wires: dict, outs: list, seed: int) -> list:
    rnd = random.Random(seed)
    improved = True
    while improved:
        improved = False
        order = [i for i, op in enumerate(kept) if op[0] == "cx"]
        rnd.shuffle(order)
        for i in order:
            trial = prune_copies([op[:3] for j, op in enumerate(kept) if j != i], outs)
            if ops_of(trial) < ops_of(kept) and pair_selects(trial, wires, outs):
                kept, improved = trial, True
                break
    return kept


def cpp_with_copies(kept: list, outs: list) -> str:
    lines = []
    for op in kept:
        if op[0] == "copy":
            lines.append(f"    V {op[1]} = {op[2]};")
            continue
        _, x, y, want_min, want_max = op
        if want_min and want_max:
            lines.append(f"    cx<O>({x}, {y});")
        elif want_min:
            lines.append(f"    {x} = O::mn({x}, {y});")
        else:
            lines.append(f"    {y} = O::mx({x}, {y});")
    lines.append(f"    up = {outs[0]};")
    lines.append(f"    down = {outs[1]};")
    return "\n".join(lines)


def main() -> None:
    # Sorting network for one column of 5 (9 comparators, optimal).
    sort5 = [(0, 1), (3, 4), (2, 4), (2, 3), (0, 3), (0, 2), (1, 4), (1, 3), (1, 2)]
    for bits in itertools.product((0, 1), repeat=5):
        v = list(bits)
        for i, j in sort5:
            v[i], v[j] = min(v[i], v[j]), max(v[i], v[j])
        assert v == sorted(bits), "sort5 network is wrong"

    pair, pair_order = batcher_merge([f"a{r}" for r in range(5)], [f"b{r}" for r in range(5)])
    pair_wires = sorted_01_inputs({"a": 5, "b": 5})
    for rank in range(10):
        assert selects(prune(pair, pair_order[rank]), pair_wires, pair_order[rank], rank)

    ab, ab_order = batcher_merge([f"a{r}" for r in range(10)], [f"b{r}" for r in range(10)])
    abc, order = batcher_merge(ab_order, [f"c{r}" for r in range(5)])
    out = order[RANK]
    wires = sorted_01_inputs({"a": 10, "b": 10, "c": 5})
    kept = prune(ab + abc, out)
    assert selects(kept, wires, out, RANK)
    small = shrink(kept, wires, out, RANK)
    assert selects(small, wires, out, RANK)
    print(f"// pair merge: {len(pair)} comparators, output order {pair_order}")
    print("\n".join(f"    cx<O>({x}, {y});" for x, y in pair))
    print(f"// window selection: {ops(kept)} ops pruned, {ops(small)} after shrinking (verified)")
    print(cpp(small, out))

    net, outs = pair_network()
    wires = pair_inputs()
    kept = prune_copies(net, outs)
    assert pair_selects(kept, wires, outs)
    best = min((shrink_pair(kept, wires, outs, seed) for seed in range(20)), key=ops_of)
    assert pair_selects(best, wires, outs)
    print(f"// 3x3 pair: {ops_of(kept)} ops pruned, {ops_of(best)} after shrinking (verified)")
    print(cpp_with_copies(best, outs))


if __name__ == "__main__":
    main()
