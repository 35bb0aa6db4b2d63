"""Module sizes and the longest functions of the package, against the house targets (#23).

    python -m scripts.size_report [--top 15] [--root src/detecteur]

Prints every module over the line limit, the largest modules, and the longest functions (from `ast`: a function's
span runs from its `def` — decorators included — to its last line, so nested functions count inside their parent
too). Exits 0 whatever it finds: it is a report, the tests hold the targets.
"""

from __future__ import annotations

import argparse
import ast
from dataclasses import dataclass
from pathlib import Path

MODULE_LINE_LIMIT = 400
FUNCTION_LINE_LIMIT = 80
# The command-line module is exempt from the function limit: each command is one function of option declarations.
FUNCTION_LIMIT_EXEMPT = ("cli.py",)


@dataclass(frozen=True)
class FunctionSize:
    module: str
    name: str
    lines: int


def module_sizes(root: Path) -> dict[str, int]:
    return {
        str(path.relative_to(root)): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(root.rglob("*.py"))
    }


def function_sizes(root: Path) -> list[FunctionSize]:
    sizes = []
    for path in sorted(root.rglob("*.py")):
        module = str(path.relative_to(root))
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
                sizes.append(FunctionSize(module, node.name, (node.end_lineno or node.lineno) - first + 1))
    return sorted(sizes, key=lambda size: -size.lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("src/detecteur"))
    parser.add_argument("--top", type=int, default=15)
    arguments = parser.parse_args()

    modules = module_sizes(arguments.root)
    functions = function_sizes(arguments.root)
    over_modules = {name: lines for name, lines in modules.items() if lines > MODULE_LINE_LIMIT}
    over_functions = [
        size
        for size in functions
        if size.lines > FUNCTION_LINE_LIMIT and not size.module.endswith(FUNCTION_LIMIT_EXEMPT)
    ]

    print(f"{len(modules)} modules, {sum(modules.values())} lines under {arguments.root}")
    print(f"\nmodules over {MODULE_LINE_LIMIT} lines: {len(over_modules)}")
    exempt = ", ".join(FUNCTION_LIMIT_EXEMPT)
    print(f"functions over {FUNCTION_LINE_LIMIT} lines (outside {exempt}): {len(over_functions)}")
    print(f"\nlargest modules (top {arguments.top}):")
    for name, lines in sorted(modules.items(), key=lambda item: -item[1])[: arguments.top]:
        print(f"  {lines:5d}  {name}")
    print(f"\nlongest functions (top {arguments.top}):")
    for size in functions[: arguments.top]:
        print(f"  {size.lines:5d}  {size.module}:{size.name}")


if __name__ == "__main__":
    main()
