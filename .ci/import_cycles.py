#!/usr/bin/env python3
"""Fails when two modules of src/ import each other (issue 16: "no import circles left").

A module is a file under src/ (`foo/mod.rs` is `foo`). An import is a `crate::a::b` or a
`super::x` path outside comments and outside test code (`#[cfg(test)] mod tests` and files
named `tests.rs`). Checked at two levels: between sibling modules (routes::put and
routes::upload) and between top-level modules (routes and files), any cycle, not only pairs.

    python3 .ci/import_cycles.py [SRC_DIR]
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path


def module_of(src: Path, path: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    return "::".join(parts) if parts != ["lib"] and parts != ["main"] else ""


def code_of(path: Path) -> str:
    text = path.read_text()
    text = text.split("#[cfg(test)]\nmod tests", 1)[0]
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))


def imports(src: Path) -> dict[str, set[str]]:
    files = {module_of(src, p): p for p in src.rglob("*.rs") if p.name != "tests.rs"}
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in files.items():
        if not module:
            continue
        code = code_of(path)
        parent = module.rsplit("::", 1)[0] if "::" in module else ""
        targets = [m.split("::") for m in re.findall(r"\bcrate::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)", code)]
        targets += [
            (parent.split("::") if parent else []) + [m]
            for m in re.findall(r"\bsuper::([a-z_][a-z0-9_]*)", code)
        ]
        for parts in targets:
            for k in range(len(parts), 0, -1):
                target = "::".join(parts[:k])
                if target in files:
                    if target != module and not module.startswith(target + "::"):
                        edges[module].add(target)
                    break
    return edges


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    edges = imports(src)
    siblings: dict[str, set[str]] = defaultdict(set)
    top: dict[str, set[str]] = defaultdict(set)
    for a, targets in edges.items():
        for b in targets:
            if a.rsplit("::", 1)[0] == b.rsplit("::", 1)[0] and "::" in a and "::" in b:
                siblings[a].add(b)
            if a.split("::")[0] != b.split("::")[0]:
                top[a.split("::")[0]].add(b.split("::")[0])
    bad = cycles(siblings) + cycles(top)
    for component in bad:
        print(f"import cycle: {' <-> '.join(component)}", file=sys.stderr)
        for a in component:
            for b in component:
                via = sorted(m for m in edges if m.split('::')[0] == a or m == a)
                if b in top.get(a, ()) or b in siblings.get(a, ()):
                    who = [m for m in via if any(t == b or t.startswith(b + "::") for t in edges[m])]
                    print(f"  {a} -> {b} (in {', '.join(who) or a})", file=sys.stderr)
    if bad:
        return 1
    print(f"import cycles: none among {len(edges)} modules of {src}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
