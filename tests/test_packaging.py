"""pyproject.toml declares every third-party package that mlx_lc and the CLI import."""

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_top_level_names() -> set[str]:
    names = set()
    for path in [*(ROOT / "mlx_lc").rglob("*.py"), *(ROOT / "cli").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"mlx_lc"}


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {re.split(r"[\s\[<>=;!~]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def test_every_imported_package_is_declared():
    dists = importlib.metadata.packages_distributions()
    missing = {}
    for name in imported_top_level_names():
        owners = {d.lower().replace("_", "-") for d in dists.get(name, [name])}
        if not owners & declared():
            missing[name] = sorted(owners)
    assert not missing, f"imported but not in pyproject.toml: {missing}"
