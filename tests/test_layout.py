"""The package's folders and the direction of their imports (#23): an upload becomes a verdict through inputs/,
model/ and inference/ (served by api/), a recipe becomes a model file through training/. Serving never imports
training code, and the lower folders never import the ones above them — imports inside functions and under
`TYPE_CHECKING` count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import detecteur

PACKAGE = Path(detecteur.__file__).parent

# folder -> the package's folders it must not import from
FORBIDDEN = {
    "inputs": ("training", "inference", "api", "model", "cases"),
    "model": ("training", "inference", "api", "cases"),
    "inference": ("training", "api"),
    "api": ("training",),
    "cases": ("training", "inference", "api", "model", "inputs"),
}


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            # `from detecteur import training` names a folder as well
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def test_every_module_lives_in_a_folder_except_the_entry_points() -> None:
    top_level = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert top_level == ["__init__.py", "__main__.py", "cli.py", "config.py", "files.py"]


def test_no_folder_is_nested_deeper_than_one_level_except_api_routes_and_migrations() -> None:
    nested = {
        str(path.parent.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if len(path.relative_to(PACKAGE).parts) > 2
    }
    assert nested <= {"api/routes", "cases/migrations", "cases/migrations/versions"}


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_a_folder_does_not_import_the_folders_above_it(folder: str) -> None:
    offending = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        for module in imported_modules(path):
            for forbidden in FORBIDDEN[folder]:
                if module == f"detecteur.{forbidden}" or module.startswith(f"detecteur.{forbidden}."):
                    offending.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert offending == []
