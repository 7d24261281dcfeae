"""The layering, checked on the source: billing/ has no import cycle and imports no Flask, and views
never import a processor's module by name (only that processor's own pages module may)."""
import ast
import pathlib

from billing.processors import PROCESSORS

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROCESSOR_MODULES = {spec.split(":")[0] for spec in PROCESSORS.values()}


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path):
    """Every module a file imports, at the top or inside a function: (line, dotted name)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def _graph(package):
    modules = {_module_name(p): p for p in (ROOT / package).rglob("*.py")}
    return {name: {m for _, m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            if dep not in state:
                cycle = visit(dep, path + [dep])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_billing_has_no_import_cycle():
    cycle = find_cycle(_graph("billing"))
    assert cycle is None, "billing/ imports in a circle: " + " -> ".join(cycle)


def test_billing_imports_no_flask():
    bad = [f"{p.relative_to(ROOT)}:{line} imports {m}" for p in (ROOT / "billing").rglob("*.py")
           for line, m in _imports(p) if m.split(".")[0] in ("flask", "flask_login", "flask_wtf", "werkzeug")]
    assert not bad, bad


def test_views_import_no_processor_module_by_name():
    import importlib

    pages = {getattr(importlib.import_module(module), cls).pages
             for module, cls in (spec.split(":") for spec in PROCESSORS.values())}
    bad = []
    for path in (ROOT / "views").rglob("*.py"):
        if _module_name(path) in pages:
            continue  # a processor's own pages may use its processor
        for line, module in _imports(path):
            if any(module == m or module.startswith(m + ".") for m in PROCESSOR_MODULES):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not bad, bad


def test_only_the_stripe_processor_imports_stripe():
    bad = [f"{p.relative_to(ROOT)}:{line}" for root in ("billing", "views", "db") for p in (ROOT / root).rglob("*.py")
           for line, m in _imports(p) if m.split(".")[0] == "stripe" and p.name != "stripe.py"]
    assert not bad, bad


def test_allocations_are_written_only_through_allocation_record():
    """Allocation.record keeps each invoice's paid_cents equal to its allocations; a direct insert would not."""
    bad = []
    for root in ("billing", "views", "db", "app.py"):
        for p in ([ROOT / root] if root.endswith(".py") else (ROOT / root).rglob("*.py")):
            for node in ast.walk(ast.parse(p.read_text(), str(p))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "Allocation"
                        and (node.func.attr in {"create", "insert", "insert_many", "bulk_create", "replace"}
                             or (node.func.attr == "update"  # re-dating a row (the demo) is harmless; moving money not
                                 and {k.arg for k in node.keywords} & {None, "amount_cents", "invoice"}))):
                    bad.append(f"{p.relative_to(ROOT)}:{node.lineno} Allocation.{node.func.attr}")
    assert not bad, bad
