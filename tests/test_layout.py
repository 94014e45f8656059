"""How the code is put together: imports go one way, the library knows nothing of the command line or the
workflow, the config module is light, and there is one training loop."""

import ast
import re
from pathlib import Path

from conftest import ROOT

LIBRARY = ROOT / "workflow" / "speechrecipe"


def module_name(path: Path) -> str:
    parts = path.relative_to(LIBRARY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, package: str) -> set[str]:
    """The speechrecipe modules a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith("speechrecipe"):
                found.add(module)
                found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("speechrecipe"))
    return found


def library_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in LIBRARY.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = {m for m in imports_of(path, package) if m in modules and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_in_the_library():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check works
    graph = library_graph()
    assert len(graph) > 30
    # A package's __init__ importing its own submodules is not a circle of the code.
    without_inits = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    assert cycles(without_inits) == []


def test_the_library_never_imports_the_command_line_layer():
    offenders = [
        m
        for m, deps in library_graph().items()
        if not m.startswith("speechrecipe.cli") and any(d.startswith("speechrecipe.cli") for d in deps)
    ]
    assert offenders == []


def test_the_library_knows_nothing_of_snakemake():
    for path in LIBRARY.rglob("*.py"):
        if "cli" in path.relative_to(LIBRARY).parts:
            continue
        text = path.read_text()
        assert not re.search(r"^\s*(import|from) snakemake", text, flags=re.MULTILINE), path
        assert "snakemake command" not in text.lower(), f"{path} tells the user how to run the workflow"


def test_the_config_module_imports_only_the_standard_library():
    tree = ast.parse((LIBRARY / "config.py").read_text())
    modules = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    modules |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert modules <= {"__future__", "dataclasses", "difflib", "hashlib", "json", "typing"}, modules


def test_one_optimizer_step_in_the_library():
    steps = [p.name for p in LIBRARY.rglob("*.py") if re.search(r"\b(optimizer|scaler)\.step\(", p.read_text())]
    assert steps == ["trainer.py"]


def test_rule_files_hold_rules_only_and_use_no_other_rule_file():
    """Helpers and shared names live in common.smk; a rule file names only common.smk's globals."""
    rules = ROOT / "workflow" / "rules"
    for smk in rules.glob("*.smk"):
        if smk.name == "common.smk":
            continue
        text = smk.read_text()
        assert not re.search(r"^def ", text, flags=re.MULTILINE), f"{smk.name} defines a function"
        assert not re.search(r"^[A-Z_]+ *=", text, flags=re.MULTILINE), f"{smk.name} defines a global"
        assert "rules." not in text, f"{smk.name} refers to another file's rule"


def test_local_scripts_are_importable_modules_without_path_tricks():
    for script in (ROOT / "local").glob("*.py"):
        text = script.read_text()
        assert "sys.path" not in text and "noqa: E402" not in text, script.name
        assert "run_preparation" in text, f"{script.name} does not share the main boilerplate"
