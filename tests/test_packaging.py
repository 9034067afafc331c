"""The wheel holds every subpackage; the repo root holds no stray module; installs are pinned."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Folders at the root that are not part of the package.
NOT_PACKAGED = {"tests", "benchmarks", "docs", "build", "dist"}


def _package_dirs() -> list[Path]:
    """Every folder under the root (outside tests/docs/...) that holds Python modules."""
    found = []
    for init in sorted(REPO_ROOT.rglob("__init__.py")):
        rel = init.parent.relative_to(REPO_ROOT)
        if rel.parts and (rel.parts[0] in NOT_PACKAGED or rel.parts[0].startswith(".")):
            continue
        found.append(rel)
    return found


def _source_modules() -> list[str]:
    mods = []
    for rel in _package_dirs():
        for py in sorted((REPO_ROOT / rel).glob("*.py")):
            mods.append("/".join(("quantdesk", *rel.parts, py.name)))
    return mods


def test_only_the_package_init_sits_at_the_root() -> None:
    stray = sorted(p.name for p in REPO_ROOT.glob("*.py") if p.name != "__init__.py")
    assert stray == [], f"modules at the repo root shadow installed packages: {stray}"
    assert not (REPO_ROOT / "tests" / "__init__.py").exists()


def test_every_source_folder_with_modules_is_a_declared_package() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    declared = set(config["tool"]["setuptools"]["packages"])
    for rel in _package_dirs():
        name = ".".join(("quantdesk", *rel.parts))
        assert name in declared, f"{name} is not in [tool.setuptools] packages"
    for folder in REPO_ROOT.iterdir():
        if folder.is_dir() and not folder.name.startswith(".") and folder.name not in NOT_PACKAGED:
            py_files = list(folder.rglob("*.py"))
            if py_files:
                assert (folder / "__init__.py").exists(), f"{folder.name}/ lacks __init__.py"


@pytest.mark.slow
def test_wheel_contains_every_subpackage_and_module(tmp_path: Path) -> None:
    # --no-isolation: build with the installed setuptools, so the test never reaches a registry.
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wheels = list(tmp_path.glob("quantdesk-*.whl"))
    assert len(wheels) == 1
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    missing = [m for m in _source_modules() if m not in names]
    assert missing == [], f"modules missing from the wheel: {missing}"
    for required in ("quantdesk/__init__.py", "quantdesk/quant_core/__init__.py"):
        assert required in names
    assert not any(n.startswith(("quantdesk/tests/", "tests/")) for n in names)
    skill_docs = sorted(
        "quantdesk/" + p.relative_to(REPO_ROOT).as_posix()
        for p in (REPO_ROOT / "skills").glob("*/SKILL.md")
    )
    assert [s for s in skill_docs if s not in names] == []
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheels[0]).read(entry_points).decode()
    assert "quantdesk = quantdesk.cli.main:main" in text


def test_constraints_pin_torch_cpu_and_every_direct_dependency() -> None:
    pins = {}
    for line in (REPO_ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    assert pins.get("torch") == "2.13.0"
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    project = config["project"]
    direct = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        direct.extend(extra)
    for requirement in direct:
        name = requirement.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip()
        assert name.lower().replace("_", "-") in pins, f"{name} is not pinned in constraints.txt"
