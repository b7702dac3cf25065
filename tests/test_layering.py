"""The project's packages build on each other in one direction (README, "Repository layout").

Every module's imports (top-level and inside functions) are read from its syntax tree; an import
of a project package must point to a lower floor, or stay inside the importer's own package:

    utils  <-  protocols  <-  metrics, models, data  <-  engine  <-  charts  <-  train.py,
                                                                              test.py, predict.py, bench
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

FLOORS = {
    "utils": 0,
    "protocols": 1,
    "metrics": 2,
    "models": 2,
    "data": 2,
    "engine": 3,
    "charts": 4,
    "bench": 5,
    "train": 5,
    "test": 5,
    "predict": 5,
}


def package_of(path: Path) -> str:
    """``engine/trainer.py`` -> ``engine``; ``train.py`` -> ``train``."""
    relative = path.relative_to(ROOT)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level project package) of every import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, name.split(".")[0]) for name in names if name.split(".")[0] in FLOORS]
    return found


def modules() -> list[Path]:
    files = [ROOT / f"{name}.py" for name in ("train", "test", "predict")]
    for package in FLOORS:
        if (ROOT / package).is_dir():
            files += sorted((ROOT / package).rglob("*.py"))
    return files


def violations(path: Path) -> list[str]:
    """Imports of ``path`` that run against the floors."""
    own = package_of(path)
    wrong = []
    for line, target in project_imports(path):
        if target != own and FLOORS[target] >= FLOORS[own]:
            wrong.append(
                f"{path.relative_to(ROOT)}:{line} imports {target} (floor {FLOORS[target]} >= {FLOORS[own]})"
            )
    return wrong


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path):
    assert violations(path) == []


def test_the_check_sees_a_wrong_arrow(tmp_path, monkeypatch):
    """A utils module importing the engine, and data importing models, are both caught."""
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "utils").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "utils" / "bad.py").write_text("def f():\n    from engine.trainer import Trainer\n")
    (tmp_path / "data" / "bad.py").write_text(
        "import models.ramsf\nfrom utils.errors import UserInputError\n"
    )
    assert violations(tmp_path / "utils" / "bad.py") == ["utils/bad.py:2 imports engine (floor 3 >= 0)"]
    assert violations(tmp_path / "data" / "bad.py") == ["data/bad.py:1 imports models (floor 2 >= 2)"]
