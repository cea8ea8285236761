"""Packaging: every kbnn subpackage and data file in the source tree is declared for the wheel.

The wheel itself is built, installed into a fresh venv and run by `.ci/run`; this test catches a
new subpackage or data file that `pyproject.toml` does not declare before that (slower) step.
"""

import fnmatch
import pathlib

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
SKIPPED_PARTS = {"__pycache__"}


def _source_dir(package: str) -> pathlib.Path:
    """Source folder of a dotted package name under `[tool.setuptools.package-dir]`."""
    package_dir = SETUPTOOLS["package-dir"]
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        root = ".".join(parts[:cut])
        if root in package_dir:
            return REPO_ROOT.joinpath(package_dir[root], *parts[cut:])
    raise AssertionError(f"{package} has no entry in [tool.setuptools.package-dir]")


def _packages_on_disk() -> set[str]:
    found = set()
    for root in SETUPTOOLS["package-dir"]:
        base = _source_dir(root)
        for init in base.rglob("__init__.py"):
            relative = init.parent.relative_to(base).parts
            if not SKIPPED_PARTS & set(relative):
                found.add(".".join((root, *relative)))
    return found


def test_every_subpackage_is_declared():
    missing = _packages_on_disk() - set(SETUPTOOLS["packages"])
    assert not missing, f"add to [tool.setuptools] packages: {sorted(missing)}"


@pytest.mark.parametrize("package", sorted(_packages_on_disk()))
def test_every_data_file_is_declared(package):
    base = _source_dir(package)
    globs = SETUPTOOLS.get("package-data", {}).get(package, [])
    subpackages = {p.parent for p in base.glob("*/__init__.py")}
    undeclared = []
    for path in base.rglob("*"):
        relative = path.relative_to(base)
        if (
            path.is_dir()
            or path.suffix in {".py", ".pyc"}
            or SKIPPED_PARTS & set(relative.parts)
            or any(parent in subpackages for parent in path.parents)
        ):
            continue
        if not any(fnmatch.fnmatch(relative.as_posix(), pattern) for pattern in globs):
            undeclared.append(relative.as_posix())
    assert not undeclared, f"add to [tool.setuptools.package-data] {package!r}: {undeclared}"
