#!/usr/bin/env python3
"""Side-by-side view of an A/B run of tools/cuda/ab_device.sh.

Usage: python3 tools/cuda/ab_compare.py ab.txt

ab.txt holds, per side (a, b, ...) and round, the table rows of bench_w4a16_cuda under "== SIDE (commit), round R"
headers. Prints one line per benchmark row (GEMM N x K and M, MoE tokens) with each side's times in us, one value
per round, so that a difference can be judged against the spread between rounds of the same build.
"""
import collections
import re
import sys


def parse(path):
    side = None
    times = collections.defaultdict(lambda: collections.defaultdict(list))  # row -> side -> [us per round]
    for line in open(path, encoding="utf-8"):
        m = re.match(r"== (\w) ", line)
        if m:
            side = m.group(1)
            continue
        if side is None or not line.startswith("| "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        try:
            if len(cells) == 10 and cells[1].isdigit():  # GEMM: N x K | M | path | us | ...
                times[f"{cells[0]} M{cells[1]}"][side].append(float(cells[3]))
            elif len(cells) == 7 and cells[0].isdigit():  # MoE: tokens | experts | MB | us | ...
                times[f"moe {cells[0]} tok"][side].append(float(cells[3]))
        except ValueError:
            continue  # a header or a floor row
    return times


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    times = parse(sys.argv[1])
    sides = sorted({s for row in times.values() for s in row})
    width = 6 * max((len(v) for row in times.values() for v in row.values()), default=1) + 2
    print("row".ljust(22) + "".join(s.rjust(width) for s in sides))
    for row, by_side in times.items():
        print(row.ljust(22) + "".join("/".join(f"{t:.1f}" for t in by_side.get(s, [])).rjust(width) for s in sides))


if __name__ == "__main__":
    main()
