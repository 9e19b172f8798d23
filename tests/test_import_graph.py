"""The package's structure: no import cycles (counting imports inside functions too), a
training package of at most 12 modules, and no class over 200 lines.

Read from the sources with `ast` (nothing is imported), so a cycle hidden behind a lazy import
inside a function fails here even if no test happens to trigger it.
"""

import ast
import glob
import os
from typing import Dict, List, Optional, Set

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "mobilenet_v3"
MAX_TRAINING_MODULES = 12
MAX_CLASS_LINES = 200


def _module_files() -> Dict[str, str]:
    """Dotted module name -> source path, for every module of the package (packages by their
    __init__)."""
    modules = {}
    for path in glob.glob(os.path.join(ROOT, PACKAGE, "**", "*.py"), recursive=True):
        parts = os.path.relpath(path, ROOT)[:-len(".py")].split(os.sep)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _module_files()


def _is_package(name: str) -> bool:
    return MODULES[name].endswith("__init__.py")


def _imported(name: str, tree: ast.AST) -> Set[str]:
    """The package's modules that module `name` names in an import, at any depth (module
    level, functions, methods, conditionals)."""
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:   # relative: from the importer's package upwards
                base = name.split(".") if _is_package(name) else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            for alias in node.names:
                # `from pkg import sub` imports the submodule; `from mod import name`, mod
                sub = f"{module}.{alias.name}"
                targets.add(sub if sub in MODULES else module)
    return {t for t in targets if t == PACKAGE or t.startswith(PACKAGE + ".")}


def _with_packages(name: str, targets: Set[str]) -> Set[str]:
    """`targets` plus the packages whose __init__ importing them runs: importing a.b.c runs
    a.b's __init__ unless the importer is inside a.b (whose __init__ is already running)."""
    out = set(targets)
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts)):
            package = ".".join(parts[:i])
            if not (name == package or name.startswith(package + ".")):
                out.add(package)
    out.discard(name)
    return out


def import_graph() -> Dict[str, Set[str]]:
    graph = {}
    for name, path in MODULES.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        graph[name] = _with_packages(name, _imported(name, tree))
    return graph


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One cycle of `graph` as [a, b, ..., a], or None."""
    state: Dict[str, int] = {}   # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_find_cycle_reports_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_imports_resolve_to_modules_of_the_package():
    unknown = {(name, target) for name, targets in import_graph().items()
               for target in targets if target not in MODULES}
    assert not unknown, f"imports of modules that do not exist: {sorted(unknown)}"


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_training_package_has_at_most_12_modules():
    modules = sorted(os.path.basename(p) for p in
                     glob.glob(os.path.join(ROOT, PACKAGE, "training", "*.py"))
                     if not p.endswith("__init__.py"))
    assert len(modules) <= MAX_TRAINING_MODULES, (
        f"mobilenet_v3/training/ has {len(modules)} modules (at most {MAX_TRAINING_MODULES}): "
        + ", ".join(modules))


def test_no_class_over_200_lines():
    # flatc's generated schema bindings (vendored, not ours to shape) are left out
    paths = (sorted(p for p in MODULES.values() if not p.endswith("_py_generated.py"))
             + sorted(glob.glob(os.path.join(ROOT, "*.py"))))   # the entry scripts
    long_classes = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                lines = node.end_lineno - start + 1
                if lines > MAX_CLASS_LINES:
                    long_classes.append(f"{os.path.relpath(path, ROOT)}:{start} {node.name} "
                                        f"({lines} lines)")
    assert not long_classes, (f"classes over {MAX_CLASS_LINES} lines: "
                              + ", ".join(long_classes))


def test_task_registry_takes_no_flags_and_train_py_does_not_branch_on_the_task():
    for name, path in MODULES.items():
        if name.startswith(PACKAGE + ".tasks"):
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), filename=path)
            imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import)
                        for a in n.names}
            imported |= {n.module for n in ast.walk(tree)
                         if isinstance(n, ast.ImportFrom) and n.module}
            assert not {m for m in imported if m.split(".")[0] == "absl"}, name
    with open(os.path.join(ROOT, "train.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    # `FLAGS.task == "detection"` is a branch; checking it against the registry's names is not
    branches = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Compare)
                and any(isinstance(side, ast.Attribute) and side.attr == "task"
                        for side in [node.left] + node.comparators)
                and any(isinstance(side, (ast.Constant, ast.Tuple, ast.List, ast.Set))
                        for side in [node.left] + node.comparators)]
    assert not branches, f"train.py compares the task by name at lines {branches}"
