#!/usr/bin/env python3
"""Per-kernel registers, spills and innermost-loop opcode mix from nvdisasm output (used by sass_local.sh).

Usage: sass_loops.py KERNEL_REGEX DIR [DIR]
Each DIR holds gemm.sass (nvdisasm -c) and ptxas.txt (nvcc -Xptxas -v) of one source tree.
The innermost loop of a kernel is the smallest backward-branch range that contains an HMMA; a kernel without
one (fully unrolled, e.g. the flat skinny kernel) is reported whole ("kernel N" instead of "loop N").
"""
import collections
import re
import sys


def kernels(sass_text):
    """mangled name -> list of (address, instruction) of its .text section."""
    out = {}
    for part in re.split(r"\n\s*\.text\.", sass_text)[1:]:
        name = part.split(":", 1)[0].split()[0]
        ins = [(int(a, 16), t.strip()) for a, t in re.findall(r"/\*([0-9a-f]{4,})\*/\s+(.*?);", part)]
        labels = {}
        for m in re.finditer(r"\n(\.L_x_\d+):", part):
            after = re.search(r"/\*([0-9a-f]{4,})\*/", part[m.end():])
            if after:
                labels[m.group(1)] = int(after.group(1), 16)
        out[name] = (ins, labels)
    return out


def inner_loop(ins, labels):
    best = None
    for addr, text in ins:
        m = re.search(r"BRA\s.*?(\.L_x_\d+)", text)
        if not m or m.group(1) not in labels or labels[m.group(1)] >= addr:
            continue
        body = [t for a, t in ins if labels[m.group(1)] <= a <= addr]
        if any("HMMA" in t for t in body) and (best is None or len(body) < len(best)):
            best = body
    return best or []


def opcode(text):
    words = text.split()
    op = words[1] if words[0].startswith("@") and len(words) > 1 else words[0]
    return op.split(".")[0]


def resources(ptxas_text):
    """mangled name -> 'REGS regs, SPILL B spill'."""
    out, name, spill = {}, None, "0"
    for line in ptxas_text.splitlines():
        m = re.search(r"Compiling entry function '(\S+)'", line)
        if m:
            name = m.group(1)
        m = re.search(r"(\d+) bytes spill stores", line)
        if m:
            spill = m.group(1)
        m = re.search(r"Used (\d+) registers", line)
        if m and name:
            out[name] = f"{m.group(1)} regs, {spill} B spill"
    return out


def short(name):
    """Kernel base name and its integer template arguments, e.g. 'flat 1 1 7' or 'pipe 1 14 3 0'."""
    m = re.search(r"w4a16_skinny_(\w+?)_kernelI((?:Li-?\d+E)+)", name)
    if not m:
        return name[:60]
    return m.group(1) + " " + " ".join(re.findall(r"Li(-?\d+)E", m.group(2)))


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    pattern, dirs = re.compile(sys.argv[1]), sys.argv[2:]
    trees = []
    for d in dirs:
        trees.append((kernels(open(f"{d}/gemm.sass", encoding="utf-8").read()),
                      resources(open(f"{d}/ptxas.txt", encoding="utf-8").read())))
    names = sorted(n for n in trees[0][0] if pattern.search(n))
    for name in names:
        cols = []
        for sass, res in trees:
            if name not in sass:
                cols.append("(absent)")
                continue
            loop = inner_loop(*sass[name])
            what = "loop"
            if not loop:
                loop, what = [t for _, t in sass[name][0]], "kernel"
            mix = collections.Counter(opcode(t) for t in loop)
            top = " ".join(f"{op}:{c}" for op, c in mix.most_common(6))
            cols.append(f"{res.get(name, '?')}; {what} {len(loop)} [{top}]")
        line = f"{short(name):16s} " + "  ||  ".join(cols)
        if len(trees) == 2 and name in trees[1][0]:
            norm = lambda k: [re.sub(r"\.L_x_\d+", "L", t) for _, t in trees[k][0][name][0]]
            same = norm(0) == norm(1)
            line += "  (same SASS)" if same else "  (SASS differs)"
        print(line)


if __name__ == "__main__":
    main()
