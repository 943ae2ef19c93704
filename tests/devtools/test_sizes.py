"""Small files and short functions (STYLE.md 7): no module of modelserver/ or gateway/ is over 400 lines and no
function over 60, unless a reason is written beside it: ``# long: <reason>`` on the def line or the line above
it (above its decorators), or for a module on the first line after its docstring."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("modelserver", "gateway")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
REASON = "# long:"


def _has_reason(line: str) -> bool:
    return REASON in line and bool(line.split(REASON, 1)[1].strip())


def _module_reason(tree: ast.Module, lines: list[str]) -> bool:
    body = tree.body
    if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)):
        return False
    after = [line for line in lines[body[0].end_lineno or 0 :] if line.strip()]
    return bool(after) and after[0].startswith(REASON) and _has_reason(after[0])


def too_long(path: Path, root: Path = REPO) -> list[str]:
    """What in one module is over its size without a written reason."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    tree = ast.parse(text)
    found = []
    if len(lines) > MAX_MODULE_LINES and not _module_reason(tree, lines):
        found.append(f"{path.relative_to(root)}: {len(lines)} lines")
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        length = (node.end_lineno or node.lineno) - first + 1
        reasons = [lines[node.lineno - 1], lines[first - 2] if first > 1 else ""]
        if length > MAX_FUNCTION_LINES and not any(_has_reason(line) for line in reasons):
            found.append(f"{path.relative_to(root)}:{node.lineno} {node.name}: {length} lines")
    return found


def test_no_module_or_function_is_too_long_without_a_reason() -> None:
    found = [
        item
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        for item in too_long(path)
    ]
    assert found == []


def test_the_check_finds_what_is_long_and_accepts_a_reason(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    module = tmp_path / "m.py"
    module.write_text(f'"""Doc."""\n\n\ndef f() -> None:\n{body}\n\n@staticmethod\ndef g() -> None:\n{body}')
    assert too_long(module, tmp_path) == ["m.py:4 f: 61 lines", "m.py:68 g: 62 lines"]
    module.write_text(
        f'"""Doc."""\n\n\ndef f() -> None:  # long: a reason\n{body}\n\n# long: another\n@staticmethod\n'
        f"def g() -> None:\n{body}"
    )
    assert too_long(module, tmp_path) == []
    module.write_text('"""Doc."""\n' + "x = 1\n" * MAX_MODULE_LINES)
    assert too_long(module, tmp_path) == ["m.py: 401 lines"]
    module.write_text('"""Doc."""\n\n# long: one concept\n' + "x = 1\n" * MAX_MODULE_LINES)
    assert too_long(module, tmp_path) == []
