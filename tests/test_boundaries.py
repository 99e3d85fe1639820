"""App boundaries: each app writes only its own tables and the apps' imports form no cycle.

Read from the source (no database): every Python file of every app except its tests and
migrations, imports at any depth (a function-level import closes a cycle as surely as one at the
top). Three rules:

* no import cycle runs through more than one app, and imports of a higher app from a lower one
  (`LAYERS`) are only the few listed in `UPWARD_IMPORTS`, each with its reason;
* raw SQL (`INSERT INTO`, `UPDATE`, `DELETE FROM` in any string literal) names only the app's own
  tables (`<app label>_...`); third-party tables are no app's business here;
* no ORM write (`update`, `create`, `bulk_create`, ...) is called on another app's model class:
  such a write goes through the owning app's services.

What must stay for now is in the `ALLOWED_*` lists with its reason; an entry that no longer
matches anything fails the test too, so the lists only shrink.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Lower layers never import higher ones (an import within a layer would need its own reason).
LAYERS = ("accounts", "contacts", "templates_app", "campaigns", "tracking", "callbacks", "analytics", "webhooks")
APPS = frozenset(LAYERS)

# (importing module, imported module): why a lower app may import it. Each imported module here is
# a read-only leaf that imports nothing from the importing app, so it cannot close a cycle.
UPWARD_IMPORTS = {
    ("campaigns.sending", "tracking.tokens"): "the send path signs tracking and unsubscribe links",
    ("campaigns.selectors", "tracking.tokens"): "a message's render context holds its signed links",
    ("campaigns.selectors", "callbacks.tokens"): "a message's render context holds its callback link",
    ("campaigns.guard", "tracking.selectors"): "the complaint guard reads complaint and sent counts",
    ("campaigns.sequences", "tracking.selectors"): "a sequence's per-step stats count replies to its messages",
    ("campaigns.selectors", "tracking.selectors"): "a campaign's stats count unsubscribe events of its messages",
}

# (importing module, imported module): an edge that still closes a cycle, with why it stays.
ALLOWED_CYCLE_EDGES: dict[tuple[str, str], str] = {}

# (file, table): raw SQL writing another app's table.
ALLOWED_RAW_SQL: dict[tuple[str, str], str] = {}

# (file, model): ORM writes on another app's model.
ALLOWED_ORM_WRITES: dict[tuple[str, str], str] = {}

WRITE_METHODS = frozenset(
    {"update", "create", "bulk_create", "bulk_update", "delete", "get_or_create", "update_or_create"}
)
RAW_WRITE = re.compile(r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+[\"`]?(\w+)", re.IGNORECASE)


def _app_files() -> dict[str, Path]:
    """Module name -> file, for every app module outside tests and migrations."""
    found = {}
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "tests" in parts or "migrations" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


FILES = _app_files()
TREES = {module: ast.parse(path.read_text(), filename=str(path)) for module, path in FILES.items()}


def _relative(module: str) -> str:
    return FILES[module].relative_to(ROOT).as_posix()


def _imports(tree: ast.AST) -> list[tuple[str, int]]:
    """(module imported, line) for every import in the file, at any depth; `from a import b` counts
    as an import of `a.b` when that is a module, else of `a`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.append((submodule if submodule in FILES else node.module, node.lineno))
    return found


def _module_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, tree in TREES.items():
        for target, _line in _imports(tree):
            if target in FILES and target != module:
                graph[module].add(target)
    return graph


def _cross_app_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan, iterative) that hold modules of more than one app."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in sorted(FILES):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len({member.split(".")[0] for member in component}) > 1:
                    components.append(sorted(component))
    return components


def _app(module: str) -> str:
    return module.split(".")[0]


def test_no_import_cycle_runs_through_two_apps():
    graph = _module_graph()
    for importer, imported in ALLOWED_CYCLE_EDGES:
        assert imported in graph[importer], f"stale ALLOWED_CYCLE_EDGES entry: {importer} -> {imported}"
        graph[importer].discard(imported)
    assert _cross_app_cycles(graph) == []


def test_lower_apps_import_higher_ones_only_where_listed():
    graph = _module_graph()
    rank = {app: position for position, app in enumerate(LAYERS)}
    upward = {
        (importer, imported)
        for importer, targets in graph.items()
        for imported in targets
        if rank[_app(imported)] > rank[_app(importer)]
    }
    allowed = set(UPWARD_IMPORTS) | set(ALLOWED_CYCLE_EDGES)
    assert sorted(upward - allowed) == []
    assert sorted(set(UPWARD_IMPORTS) - upward) == [], "stale UPWARD_IMPORTS entries"


def _string_literals(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value, node.lineno


def test_raw_sql_writes_only_the_apps_own_tables():
    found = set()
    problems = []
    for module, tree in TREES.items():
        app = _app(module)
        for text, line in _string_literals(tree):
            for table in RAW_WRITE.findall(text):
                owner = next((other for other in APPS if table.lower().startswith(f"{other}_")), None)
                if owner is None or owner == app:
                    continue  # the app's own table, a temporary one, or a third-party table
                key = (_relative(module), table.lower())
                if key in ALLOWED_RAW_SQL:
                    found.add(key)
                else:
                    problems.append(f"{_relative(module)}:{line} writes {table}")
    assert problems == []
    assert sorted(set(ALLOWED_RAW_SQL) - found) == [], "stale ALLOWED_RAW_SQL entries"


def _foreign_models(tree: ast.AST, app: str) -> dict[str, str]:
    """Names bound by `from <other app>.models import X` (at any depth) -> their app."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            owner, _, rest = node.module.partition(".")
            if owner in APPS and owner != app and rest == "models":
                for alias in node.names:
                    names[alias.asname or alias.name] = owner
    return names


def _receiver_root(node: ast.AST) -> tuple[str | None, bool]:
    """The name a call chain starts from (`Contact` in `Contact.objects.filter(...).update`) and
    whether the chain goes through a manager."""
    through_manager = False
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            through_manager = through_manager or node.attr in ("objects", "_default_manager", "_base_manager")
            node = node.value
        elif isinstance(node, ast.Name):
            return node.id, through_manager
        else:
            return None, through_manager


def test_no_orm_write_on_another_apps_model():
    found = set()
    problems = []
    for module, tree in TREES.items():
        foreign = _foreign_models(tree, _app(module))
        if not foreign:
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in WRITE_METHODS:
                continue
            root, through_manager = _receiver_root(node.func.value)
            if root in foreign and through_manager:
                key = (_relative(module), root)
                if key in ALLOWED_ORM_WRITES:
                    found.add(key)
                else:
                    problems.append(f"{_relative(module)}:{node.lineno} {root}...{node.func.attr}()")
    assert problems == []
    assert sorted(set(ALLOWED_ORM_WRITES) - found) == [], "stale ALLOWED_ORM_WRITES entries"


def test_the_checks_see_what_they_look_for():
    """The parsers find a function-level import, an f-string's SQL and a chained ORM write."""
    tree = ast.parse(
        "def f():\n"
        "    from contacts.models import Contact\n"
        "    Contact.objects.filter(pk=1).update(status='x')\n"
        "    sql = f'UPDATE contacts_contact SET a = {1}'\n"
    )
    assert ("contacts.models", 2) in _imports(tree)
    assert _foreign_models(tree, "tracking") == {"Contact": "contacts"}
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "update"]
    assert _receiver_root(calls[0].func.value) == ("Contact", True)
    assert [RAW_WRITE.findall(text) for text, _ in _string_literals(tree) if "UPDATE" in text] == [["contacts_contact"]]
    graph = defaultdict(set, {"campaigns.sending": {"tracking.guard"}, "tracking.guard": {"campaigns.sending"}})
    assert _cross_app_cycles(graph) == [["campaigns.sending", "tracking.guard"]]
