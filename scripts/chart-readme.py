"""The values table of the chart's README, written from values.schema.json and values.yaml.

Usage: chart-readme.py           rewrite the tables between <!-- values:start --> and
                                 <!-- values:end --> in helm/storefront/README.md
       chart-readme.py --check   exit 1 when the README's tables are not what it would write
                                 (scripts/check-chart.sh runs this)

Rows come from the schema: every key under `properties` (through `$ref`s), with its type and
description, and its default from values.yaml. A top-level key with a `title` starts a section.
Keys whose schemas are the same definition (services.auth, .catalog-order, .worker) share their
rows as services.<name>.…, with each one's default where they differ.

Both modes fail, before anything is written, when a key of values.yaml has no schema entry or a
schema entry has no description: the table is only as complete as they are. Run it with the
tools' Python, which has PyYAML (the YAML reader of scripts/chart_policy.py):
  "$(bash scripts/tools.sh path python)" scripts/chart-readme.py
"""

import difflib
import json
import os
import sys

try:
    import yaml
except ImportError:
    sys.exit('chart-readme.py reads values.yaml with PyYAML: run it as "$(bash scripts/tools.sh path python)" '
             "scripts/chart-readme.py (bash scripts/tools.sh python installs it)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART = os.path.join(ROOT, "helm", "storefront")
README = os.path.join(CHART, "README.md")
START, END = "<!-- values:start -->", "<!-- values:end -->"
MISSING = object()  # a key the schema knows and values.yaml does not set

schema = json.load(open(os.path.join(CHART, "values.schema.json")))
defaults = yaml.safe_load(open(os.path.join(CHART, "values.yaml")))


def resolve(node):
    """The node with its `$ref` (#/definitions/…) merged in; the node's own keys (description) win."""
    while "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            sys.exit(f"values.schema.json: {ref}: only local references are supported")
        target = schema
        for part in ref[2:].split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def family(properties):
    """The shared $ref when every one of two or more keys is just that reference."""
    refs = {json.dumps(p, sort_keys=True) for p in properties.values()}
    if len(properties) > 1 and len(refs) == 1 and set(next(iter(properties.values()))) == {"$ref"}:
        return next(iter(properties.values()))
    return None


def problems():
    """Schema entries without a description, values.yaml keys without a schema entry."""
    found = []

    def schema_walk(node, path):
        node = resolve(node)
        if path and not node.get("description", "").strip():
            found.append(f"values.schema.json: {path} has no description")
        for key, child in node.get("properties", {}).items():
            schema_walk(child, f"{path}.{key}" if path else key)

    def values_walk(value, node, path):
        node = resolve(node)
        if not isinstance(value, dict) or "properties" not in node:
            return  # a leaf, or a map of free keys (annotations, labels, resources …)
        for key, child in value.items():
            where = f"{path}.{key}" if path else key
            if key not in node["properties"]:
                found.append(f"values.yaml: {where} has no entry in values.schema.json")
            else:
                values_walk(child, node["properties"][key], where)

    schema_walk(schema, "")
    values_walk(defaults, schema, "")
    return found


def markdown(text):
    """Table-cell text: pipes escaped; outside `code`, < > and * shown as written."""
    parts = text.replace("|", "\\|").split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")
    return "`".join(parts)


def show(value):
    if value is MISSING:
        return "(not set)"
    return "`" + json.dumps(value, ensure_ascii=False, separators=(", ", ": ")).replace("|", "\\|") + "`"


def type_of(node):
    if "enum" in node:
        shown = " \\| ".join(json.dumps(e) for e in node["enum"])
        return f"`{shown}`" if len(shown) <= 40 else "enum"
    kind = node.get("type", "object" if "properties" in node else "any")
    return " \\| ".join(kind) if isinstance(kind, list) else kind


def rows(node, path, values):
    """Table rows of node and its properties; values: {label: default} (one unlabelled entry, or
    one per member of a family)."""
    node = resolve(node)
    out = []
    if path:
        if "properties" in node:
            default = ""
        else:
            distinct = {json.dumps(v, sort_keys=True) if v is not MISSING else "" for v in values.values()}
            if len(distinct) == 1:
                default = show(next(iter(values.values())))
            else:
                default = "<br>".join(f"{label}: {show(v)}" for label, v in values.items())
        out.append(f"| `{path}` | {type_of(node)} | {default} | {markdown(node['description'].strip())} |")
    properties = node.get("properties", {})
    shared = family(properties)
    if shared is not None:
        members = {}
        for key in properties:
            for label, value in values.items():
                child = value.get(key, MISSING) if isinstance(value, dict) else MISSING
                members[f"{label}.{key}" if label else key] = child
        return out + rows(shared, f"{path}.<name>", members)
    for key, child in properties.items():
        child_values = {label: (v.get(key, MISSING) if isinstance(v, dict) else MISSING) for label, v in values.items()}
        out += rows(child, f"{path}.{key}" if path else key, child_values)
    return out


def tables():
    header = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    out, section = [], None
    for key, node in schema["properties"].items():
        title = node.get("title") or (None if section else "Values")
        if title and title != section:
            section = title
            out += (["", f"### {title}", ""] if out else [f"### {title}", ""]) + header
        out += rows(node, key, {"": defaults.get(key, MISSING)})
    return "\n".join(out)


def main():
    check = sys.argv[1:] == ["--check"]
    if sys.argv[1:] not in ([], ["--check"]):
        sys.exit(__doc__)
    found = problems()
    if found:
        sys.exit(f"{len(found)} value(s) undocumented:\n  " + "\n  ".join(found))
    text = open(README).read()
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        sys.exit(f"{README}: needs one {START} … {END} pair")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    wanted = f"{head}{START}\n{tables()}\n{END}{tail}"
    if wanted == text:
        print(f"{os.path.relpath(README, ROOT)}: the values table is up to date")
        return
    if check:
        diff = difflib.unified_diff(text.splitlines(), wanted.splitlines(), "README.md", "from the schema", lineterm="", n=0)
        sys.exit(f"{os.path.relpath(README, ROOT)}: the values table is stale (run scripts/chart-readme.py):\n"
                 + "\n".join(list(diff)[:30]))
    open(README, "w").write(wanted)
    print(f"{os.path.relpath(README, ROOT)}: values table written")


main()
