"""Layering checks over the Rust sources (scripts/ci.sh lint; issue 19).

Usage: check-layers.py [--routes] [ROOT]      (ROOT: the repository, default this script's parent)
       check-layers.py --self-test            (the checks find what they must, on a made-up tree)

1. No import circles between the top-level modules of one crate. For every crate under libs/ and
   services/, each target root in src/ (lib.rs, main.rs) and the modules it declares make one
   graph: module `a` depends on `b` when a file of `a` (src/a.rs, or anything under src/a/, since
   a module's submodules count as the module) names `crate::b` — in a `use crate::…` (groups
   `use crate::{b::X, c}` included) or a path such as `crate::b::f()`. A name the root re-exports
   (`pub use b::X;` in lib.rs, then `crate::X`) counts as `b`. Comments (doc links included) and
   string literals are not code and do not count; `super::` paths are not followed. Any set of
   modules that import each other (a strongly connected component) fails the check, listed with
   each circle through it and the line where each of its imports is written.
2. With --routes: routes only translate HTTP, so no file under services/*/src/routes/ names
   `sqlx` in its code (SQL and its errors belong to store/ and the use cases).

Prints a short summary when everything passes; exits 1 listing every failure otherwise.
"""

import os
import re
import sys
import tempfile
from collections import defaultdict

CRATE_PARENTS = ("libs", "services")
ROOT_FILES = ("lib.rs", "main.rs")


def strip_non_code(text):
    """The source with comments, string and char literals blanked out (newlines kept, so line
    numbers still hold)."""
    out = []
    i, n = 0, len(text)

    def blank(s):
        return "".join("\n" if c == "\n" else " " for c in s)

    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(blank(text[i:end]))
            i = end
        elif c == "/" and nxt == "*":
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 300]) and not (
            i and (text[i - 1].isalnum() or text[i - 1] == "_")
        ):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            close = '"' + hashes
            start = i + 1 + len(hashes) + 1
            end = text.find(close, start)
            end = n if end < 0 else end + len(close)
            out.append(blank(text[i:end]))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(blank(text[i:j + 1]))
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a): only the first is text.
            m = re.match(r"'(\\(u\{[0-9a-fA-F]*\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'", text[i:i + 12])
            if m:
                out.append(blank(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def split_top_level(group):
    """`a::X, b::{Y, Z}, c` → ['a::X', 'b::{Y, Z}', 'c']."""
    items, depth, current = [], 0, []
    for c in group:
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if c == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(c)
    items.append("".join(current).strip())
    return [item for item in items if item]


def matching_brace(text, open_at):
    depth = 0
    for j in range(open_at, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(text) - 1


CRATE_PATH = re.compile(r"(?<![\w])\$?crate\s*::\s*(\{|[A-Za-z_]\w*)")
MOD_DECL = re.compile(
    r"^\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+([A-Za-z_]\w*)\s*;", re.M
)
PUB_USE = re.compile(r"\bpub\s+use\s+([A-Za-z_]\w*)\s*::\s*([^;]+);")


def crate_references(code):
    """(first segment after `crate::`, line) for every crate path in the code."""
    refs = []
    for m in CRATE_PATH.finditer(code):
        line = code.count("\n", 0, m.start()) + 1
        if m.group(1) != "{":
            refs.append((m.group(1), line))
            continue
        close = matching_brace(code, m.end() - 1)
        for item in split_top_level(code[m.end():close]):
            first = re.match(r"[A-Za-z_]\w*", item)
            if first and first.group(0) != "self":
                refs.append((first.group(0), line))
    return refs


def reexports(root_code, modules):
    """Names the root re-exports from its modules: `pub use config::{Needs, X as Y};`."""
    names = {}
    for m in PUB_USE.finditer(root_code):
        module, rest = m.group(1), m.group(2).strip()
        if module not in modules:
            continue
        if rest.startswith("{"):
            items = split_top_level(rest[1:rest.rfind("}")])
        else:
            items = [rest]
        for item in items:
            alias = re.search(r"\bas\s+(\w+)\s*$", item)
            last = re.findall(r"[A-Za-z_]\w*", item.split(" as ")[0])
            name = alias.group(1) if alias else (last[-1] if last else None)
            if name and name not in ("self", "*"):
                names[name] = module
    return names


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def module_files(src, module):
    """src/module.rs and everything under src/module/."""
    files = []
    single = os.path.join(src, module + ".rs")
    if os.path.isfile(single):
        files.append(single)
    folder = os.path.join(src, module)
    for dirpath, _dirs, names in os.walk(folder):
        files.extend(os.path.join(dirpath, n) for n in names if n.endswith(".rs"))
    return sorted(files)


def strongly_connected(graph):
    """Tarjan's algorithm; the components of more than one node, each sorted."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def circles_in(graph, component, limit=50):
    """Every elementary circle within one strongly connected component (at most `limit`), each
    as a list of modules starting at its smallest and ending there again."""
    members = sorted(component)
    found = []
    for start in members:
        allowed = {m for m in members if m >= start}
        stack = [(start, [start])]
        while stack and len(found) < limit:
            v, path = stack.pop()
            for w in sorted(graph.get(v, ()), reverse=True):
                if w == start:
                    found.append(path + [start])
                elif w in allowed and w not in path:
                    stack.append((w, path + [w]))
    return sorted(found, key=lambda c: (len(c), c))


def check_crate(repo, crate_dir):
    """(modules, module imports, circles, [failure text]) over every target root of the crate."""
    src = os.path.join(crate_dir, "src")
    failures, modules_seen, edges_seen, circles = [], 0, 0, 0
    for root_name in ROOT_FILES:
        root = os.path.join(src, root_name)
        if not os.path.isfile(root):
            continue
        root_code = strip_non_code(read(root))
        modules = set(MOD_DECL.findall(root_code))
        names = reexports(root_code, modules)
        graph, where = defaultdict(set), {}
        for module in sorted(modules):
            graph.setdefault(module, set())
            for path in module_files(src, module):
                for name, line in crate_references(strip_non_code(read(path))):
                    target = name if name in modules else names.get(name)
                    if target is None or target == module:
                        continue
                    graph[module].add(target)
                    where.setdefault((module, target), f"{os.path.relpath(path, repo)}:{line}")
        modules_seen += len(modules)
        edges_seen += sum(len(targets) for targets in graph.values())
        crate = os.path.relpath(crate_dir, repo)
        for component in strongly_connected(graph):
            found = circles_in(graph, component)
            circles += len(found)
            lines = [f"{crate} ({root_name}): modules importing each other: {', '.join(component)}"]
            for circle in found:
                lines.append(f"  circle {' → '.join(circle)}")
                lines += [f"    {a} → {b}: {where[(a, b)]}" for a, b in zip(circle, circle[1:])]
            failures.append("\n".join(lines))
    return modules_seen, edges_seen, circles, failures


def check_routes(repo):
    """(files checked, [failure text]): routes name no `sqlx`."""
    failures, checked = [], 0
    services = os.path.join(repo, "services")
    for service in sorted(os.listdir(services)) if os.path.isdir(services) else []:
        routes = os.path.join(services, service, "src", "routes")
        for dirpath, _dirs, names in os.walk(routes):
            for name in sorted(n for n in names if n.endswith(".rs")):
                path = os.path.join(dirpath, name)
                checked += 1
                code = strip_non_code(read(path))
                for number, line in enumerate(code.splitlines(), 1):
                    if re.search(r"\bsqlx\b", line):
                        failures.append(
                            f"{os.path.relpath(path, repo)}:{number}: a route names sqlx; "
                            "SQL and its errors belong in store/ (routes only translate HTTP)"
                        )
    return checked, failures


SELF_TEST_TREE = {
    # x → y through a group import and y → x through a name the root re-exports: a circle.
    # z is named only in a comment, a doc link and a string: no import.
    "libs/a/src/lib.rs": "pub mod x;\nmod y;\n#[cfg(test)] pub(crate) mod z;\npub use x::Thing;\n",
    "libs/a/src/x.rs": "use crate::{y::{f, g}, self};\npub struct Thing;\n"
    "/// [`crate::z`]\nfn h() { let _ = \"crate::z::\"; let _ = '\"'; } // crate::z\n",
    "libs/a/src/y/mod.rs": "mod deep;\npub fn f() {}\npub fn g() {}\n",
    "libs/a/src/y/deep.rs": "fn k(_: crate::Thing) {}\n",
    "libs/a/src/z.rs": "use crate::x::Thing;\n/* nested /* crate::y */ comment */\n",
    # A service with no circle, and a route naming sqlx once in code and once in a comment.
    "services/s/src/main.rs": "mod app;\nmod routes;\nmod store;\n",
    "services/s/src/app.rs": "use crate::routes::router;\n",
    "services/s/src/routes/mod.rs": "use crate::store;\n// no sqlx here\n",
    "services/s/src/routes/items.rs": "fn f(e: sqlx::Error) {}\n",
    "services/s/src/store/mod.rs": "pub fn q() {}\n",
}


def self_test():
    with tempfile.TemporaryDirectory() as tree:
        for path, text in SELF_TEST_TREE.items():
            os.makedirs(os.path.dirname(os.path.join(tree, path)), exist_ok=True)
            with open(os.path.join(tree, path), "w", encoding="utf-8") as f:
                f.write(text)
        modules, edges, circles, failures = check_crate(tree, os.path.join(tree, "libs/a"))
        assert (modules, edges, circles) == (3, 3, 1), (modules, edges, circles, failures)
        assert "circle x → y → x" in failures[0], failures
        assert "libs/a/src/y/deep.rs:1" in failures[0], failures
        assert check_crate(tree, os.path.join(tree, "services/s"))[1:] == (2, 0, []), "service"
        checked, routes = check_routes(tree)
        assert checked == 2 and len(routes) == 1 and "items.rs:1" in routes[0], routes
        assert strip_non_code("a /* b /* c */ d */ e") == "a " + " " * 17 + " e"
    print("check-layers: self-test ok")
    return 0


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    flags = {a for a in argv if a.startswith("--")}
    unknown = flags - {"--routes", "--self-test"}
    if unknown or len(args) > 1:
        print(__doc__, file=sys.stderr)
        return 2
    if "--self-test" in flags:
        return self_test()
    repo = os.path.abspath(args[0] if args else os.path.join(os.path.dirname(__file__), ".."))

    crates, modules, edges, circles, failures = 0, 0, 0, 0, []
    for parent in CRATE_PARENTS:
        base = os.path.join(repo, parent)
        for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            crate_dir = os.path.join(base, name)
            if not os.path.isdir(os.path.join(crate_dir, "src")):
                continue
            crates += 1
            m, e, c, f = check_crate(repo, crate_dir)
            modules, edges, circles, failures = modules + m, edges + e, circles + c, failures + f
    summary = f"{crates} crates, {modules} modules, {edges} module imports: {circles} circles"

    if "--routes" in flags:
        checked, route_failures = check_routes(repo)
        failures += route_failures
        summary += f"; {checked} route files, {len(route_failures)} naming sqlx"
    else:
        summary += "; routes rule off (--routes)"

    if failures:
        print("\n".join(failures), file=sys.stderr)
        print(f"check-layers: FAILED ({summary})", file=sys.stderr)
        return 1
    print(f"check-layers: ok ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
