#!/usr/bin/env python3
"""Copies the benchmark's final tables into the CUDA results page.

    python3 tools/cuda/results_tables.py [BENCH_TXT [README_MD]]
      defaults: bench/cuda/results/bench_w4a16.txt and bench/cuda/results/README.md

bench_w4a16_cuda prints its GEMM table twice (row by row as it goes, with the sweep's variant rows in between,
and once more at the end), so the rows to copy are those under the *last* occurrence of each table header. The
page keeps its own prose; only the rows under the same three headers there (each must appear exactly once) are
replaced: the W4A16 GEMM table, the read-only floor and the MoE layer. Prints what changed; exits 1 if a header is
missing from the benchmark output or not exactly once on the page.
"""
import pathlib
import sys

HEADERS = {
    "GEMM": "| N x K | M | path | us | weight GB/s | % of copy BW | TFLOP/s | cuBLAS bf16 us | cuBLAS TFLOP/s | speed-up |",
    "floor": "| N x K | bytes | us | GB/s | % of copy BW | PDL us | PDL % of copy BW |",
    "MoE": "| tokens | experts run | MB touched | us | GB/s | % of copy BW | floor us |",
}


def rows_after(lines, start):
    """Table rows from lines[start] (just past the header and its |---| line) to the first non-row line."""
    end = start
    while end < len(lines) and lines[end].startswith("| "):
        end += 1
    return end


def header_lines(lines, header):
    return [i for i, line in enumerate(lines) if line.rstrip() == header]


def main(argv):
    root = pathlib.Path(__file__).resolve().parents[2]
    bench = pathlib.Path(argv[1]) if len(argv) > 1 else root / "bench/cuda/results/bench_w4a16.txt"
    readme = pathlib.Path(argv[2]) if len(argv) > 2 else root / "bench/cuda/results/README.md"
    b = bench.read_text().split("\n")
    r = readme.read_text().split("\n")
    for name, header in HEADERS.items():
        in_bench, in_readme = header_lines(b, header), header_lines(r, header)
        if not in_bench or len(in_readme) != 1:
            print(f"{name}: header in {bench}: {len(in_bench)} times, in {readme}: {len(in_readme)} (want >= 1, 1)",
                  file=sys.stderr)
            return 1
        bi, ri = in_bench[-1], in_readme[0]
        new = b[bi + 2 : rows_after(b, bi + 2)]
        end = rows_after(r, ri + 2)
        old = r[ri + 2 : end]
        r[ri + 2 : end] = new
        changed = sum(1 for x, y in zip(old, new) if x != y) + abs(len(old) - len(new))
        print(f"{name}: {len(new)} rows ({changed} changed)")
    readme.write_text("\n".join(r))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
