"""SECURITY.md names the tests that show each requirement met: each one must exist."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAMED_TEST = re.compile(r"`((?:[\w/]+/)?test_\w+\.py)::(test_\w+)`")
NAMED_FILE = re.compile(r"`((?:[\w/]+/)?test_\w+\.py)`")


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def test_every_test_security_md_names_exists():
    document = (ROOT / "SECURITY.md").read_text(encoding="utf-8")
    named = NAMED_TEST.findall(document)
    assert len(named) > 40, "SECURITY.md names fewer tests than it did when this was written"
    missing = [
        f"{module}::{name}"
        for module, name in named
        if not (ROOT / "tests" / module).is_file()
        or name not in defined_tests(ROOT / "tests" / module)
    ]
    missing += [m for m in NAMED_FILE.findall(document) if not (ROOT / "tests" / m).is_file()]
    assert not missing, f"SECURITY.md names tests that do not exist: {missing}"
