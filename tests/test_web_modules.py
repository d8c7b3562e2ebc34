"""The browser app's ES modules read as layers: no module imports itself back through others
(a cycle makes load order matter and hides what a page really needs), and the pages outside
the call do not load the call page's code."""
import re
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parent.parent / "web" / "js"
STATIC_IMPORT = re.compile(r'^\s*(?:import|export)\s[^;]*?\sfrom\s+"(\.[^"]+)"|^\s*import\s+"(\.[^"]+)"', re.M)
DYNAMIC_IMPORT = re.compile(r'\bimport\(\s*"(\.[^"]+)"\s*\)')


def imports(module, dynamic=True):
    """The modules `module` imports; with `dynamic`, those it loads later with import() too
    (a cycle through one still ties the modules together)."""
    text = module.read_text()
    found = {match[0] or match[1] for match in STATIC_IMPORT.findall(text)}
    if dynamic:
        found |= set(DYNAMIC_IMPORT.findall(text))
    return {(module.parent / name).resolve() for name in found}


def graph(dynamic=True):
    return {module.resolve(): imports(module, dynamic) for module in JS.rglob("*.js")}


def closure(start, edges):
    seen, todo = set(), [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_import_names_a_module_that_exists():
    for module, imports in graph().items():
        missing = [str(target.relative_to(JS)) for target in imports if not target.exists()]
        assert not missing, f"{module.relative_to(JS)} imports {missing}"


def test_no_module_imports_itself_back():
    edges = graph()
    cycles = [module.relative_to(JS) for module in edges if module in closure(module, edges)]
    assert cycles == [], f"modules on an import cycle: {sorted(map(str, cycles))}"


@pytest.mark.parametrize("page", ["history.js", "earnings.js", "directory.js", "operator-refunds.js", "account.js"])
def test_pages_outside_the_call_load_none_of_the_call_pages_code(page):
    loaded = {module.name for module in closure((JS / "pages" / page).resolve(), graph(dynamic=False))}
    assert not loaded & {"callui.js", "callpage.js", "rtc.js", "whiteboard.js"}, sorted(loaded)
