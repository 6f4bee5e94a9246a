#!/usr/bin/env python3
"""Checks that the engine's modules depend one way: no module names a module of a higher layer.

How it works: every `.rs` file under runtime/src is mapped to its top-level module (the first
path component under src/; lib.rs is the crate root). Comments and string literals are removed,
then every path that names a top-level module is collected: `crate::NAME`, `super::NAME` from a
file directly under src/ (whose `super` is the crate root), and the names inside a
`use crate::{a, b::c}` group. A reference from a module to a module of a higher layer fails the
check; references within a layer are allowed. Test-only code is checked like the rest.

The layers, lowest first, are listed in LAYERS below. A top-level module missing from them
fails the check, so a new module has to be given a place.
"""

import pathlib
import re
import sys

LAYERS = [
    ("util", ["sync", "unwind", "heap"]),
    ("context", ["context", "coop"]),
    ("drivers", ["time", "io", "driver"]),
    ("task", ["task_core", "memory"]),
    ("scheduler", ["scheduler"]),
    ("runtime", ["runtime", "blocking", "tokio_bridge"]),
    ("api", ["task", "net", "signal", "<root>"]),
]

RANK = {m: i for i, (_, mods) in enumerate(LAYERS) for m in mods}
NAME = {m: name for name, mods in LAYERS for m in mods}


def strip(src: str) -> str:
    """Removes comments, string and char literals (keeps line structure)."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    out.append("\n" if src[i] == "\n" else "")
                    i += 1
        elif c == "r" and re.match(r'r#*"', src[i:]):
            hashes = re.match(r'r(#*)"', src[i:]).group(1)
            end = src.find('"' + hashes, i + 2 + len(hashes))
            out.append('""' + "\n" * src.count("\n", i, end))
            i = end + 1 + len(hashes)
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append('""' + "\n" * src.count("\n", i, j))
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", src[i:]):
            i += len(re.match(r"'(\\.|[^\\'])'", src[i:]).group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def top_module(path: pathlib.Path, src_dir: pathlib.Path) -> str:
    rel = path.relative_to(src_dir)
    if rel == pathlib.Path("lib.rs"):
        return "<root>"
    return rel.parts[0].removesuffix(".rs")


def references(code: str, at_top: bool):
    """Top-level module names the code refers to, with line numbers."""
    for m in re.finditer(r"\bcrate\s*::\s*(\{|\w+)", code):
        line = code.count("\n", 0, m.start()) + 1
        if m.group(1) != "{":
            yield m.group(1), line
            continue
        # A `use crate::{..}` group: the first name of each item at the group's own depth.
        depth, expect, i = 1, True, m.end()
        while i < len(code) and depth:
            c = code[i]
            if c == "{":
                depth, expect = depth + 1, False
            elif c == "}":
                depth -= 1
            elif c == "," and depth == 1:
                expect = True
            elif expect and (c.isalpha() or c == "_"):
                name = re.match(r"\w+", code[i:]).group(0)
                yield name, code.count("\n", 0, i) + 1
                expect, i = False, i + len(name) - 1
            i += 1
    if at_top:
        for m in re.finditer(r"\bsuper\s*::\s*(\w+)", code):
            yield m.group(1), code.count("\n", 0, m.start()) + 1


def main() -> int:
    root = pathlib.Path(__file__).resolve().parent.parent
    src_dir = root / "runtime" / "src"
    modules = {p.name.removesuffix(".rs") for p in src_dir.iterdir() if p.suffix == ".rs" or p.is_dir()}
    modules.discard("lib")
    errors = []
    for m in sorted(modules - RANK.keys()):
        errors.append(f"runtime/src/{m}: top-level module without a layer; add it to LAYERS")
    edges = {}
    for path in sorted(src_dir.rglob("*.rs")):
        module = top_module(path, src_dir)
        at_top = path.parent == src_dir and path.name not in ("lib.rs", "mod.rs")
        code = strip(path.read_text())
        for target, line in references(code, at_top):
            if target not in modules or target == module:
                continue
            edges.setdefault((module, target), []).append(f"{path.relative_to(root)}:{line}")
            if RANK.get(target, -1) > RANK.get(module, len(LAYERS)):
                errors.append(
                    f"{path.relative_to(root)}:{line}: {module} ({NAME.get(module)}) uses "
                    f"{target} ({NAME.get(target)}), a higher layer"
                )
    print("layers, lowest first (a module may use its own layer and those below):")
    for i, (name, mods) in enumerate(LAYERS):
        uses = sorted({t for (s, t) in edges if s in mods and t not in mods and t in RANK})
        print(f"  {i} {name:<9} {', '.join(mods):<30} uses: {', '.join(uses) or '-'}")
    if errors:
        print(f"\n{len(errors)} layering error(s):")
        for e in errors:
            print("  " + e)
        return 1
    print("no module uses a higher layer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
