"""The layers, read from the imports (issue 15 item 1), bottom up: the platform (interkanect/,
but for the command line on top of everything) imports nothing of ours; the pure rules (rules/)
import only the standard library, third-party packages and each other; the actors (actors/)
import the rules and the platform; the gateway (gateway/) the actors, the rules and the
platform. No layer imports one above it, so there is no cycle between them; nothing of the
product imports the tests or the PayPal emulator; the scripts (benchmarks, load) take from the
tests only their kit (tests/kit/), and the kit imports no test module."""
import ast
import pathlib

from interkanect import config
from rules import fees

ROOT = pathlib.Path(__file__).resolve().parent.parent
OURS = ("rules", "actors", "gateway", "interkanect", "paypal_emulator", "tests", "scripts", "schemas")


def imported(path):
    """Our modules `path` imports, dotted (`from rules import ledger` is rules.ledger)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= ({f"{node.module}.{alias.name}" for alias in node.names} if node.module in OURS
                      else {node.module})
    return {name for name in found if name.split(".")[0] in OURS}


def files(folder):
    return sorted((ROOT / folder).rglob("*.py"))


def test_the_rules_import_only_each_other():
    wrong = {str(path.relative_to(ROOT)): sorted(m for m in imported(path) if not m.startswith("rules."))
             for path in files("rules")}
    assert {path: modules for path, modules in wrong.items() if modules} == {}


def test_the_platform_imports_nothing_of_ours_but_itself():
    wrong = {str(path.relative_to(ROOT)): sorted(m for m in imported(path) if not m.startswith("interkanect"))
             for path in files("interkanect") if path.name != "cli.py"}
    assert {path: modules for path, modules in wrong.items() if modules} == {}


def test_no_actor_imports_the_gateway_and_nothing_of_the_product_imports_the_tests_or_the_emulator():
    wrong = {}
    for folder, forbidden in (("actors", ("gateway", "tests", "paypal_emulator", "scripts")),
                              ("gateway", ("tests", "paypal_emulator", "scripts")),
                              ("interkanect", ("tests", "scripts"))):
        for path in files(folder):
            bad = sorted(m for m in imported(path) if m.split(".")[0] in forbidden)
            if bad:
                wrong[str(path.relative_to(ROOT))] = bad
    assert wrong == {}



def outside_the_kit(module):
    return module.split(".")[0] == "tests" and not (module == "tests.kit" or module.startswith("tests.kit."))


def test_scripts_and_the_test_kit_import_no_test_module():
    """A helper a benchmark and a test share lives in tests/kit/, not in a test module (whose
    fixtures, marks and module-level setup would come along) nor in conftest (pytest's alone)."""
    wrong = {}
    for path in files("scripts") + files("tests/kit"):
        bad = sorted(m for m in imported(path) if outside_the_kit(m))
        if bad:
            wrong[str(path.relative_to(ROOT))] = bad
    assert wrong == {}

def test_the_fee_rules_default_minimum_is_the_policys():
    assert fees.DEFAULT_MIN_PAYMENT_CENTS == config.Policy().min_price_cents
