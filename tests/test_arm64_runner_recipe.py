"""The aarch64 runner build recipe (benchmarks/arm64_runner/build.py): what runs offline."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "benchmarks" / "arm64_runner"
SHARED_README = REPO.parent / "shared" / "arm64" / "README.md"


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location("arm64_runner_build", RECIPE / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_harness_source_comes_from_a_pinned_checkout(build, tmp_path):
    roots = {link.relative_to(tmp_path).parts[0] for link, _ in build.link_plan(tmp_path)}
    sources = (RECIPE / "harness" / "sources_full.txt").read_text().split()
    assert len(sources) == len(set(sources)) > 200
    assert {path.split("/")[0] for path in sources} <= roots
    makefile = (RECIPE / "harness" / "Makefile.full").read_text()
    assert "sources_full.txt" in makefile and "lce_run_full.cc" in makefile
    for source in build.SOURCES:  # revisions are pinned: a sha, a release tag, never a branch
        assert re.fullmatch(r"[0-9a-f]{7,40}|v?\d[\w.]*", source.rev), source


@pytest.mark.skipif(not SHARED_README.is_file(), reason="no ../shared/arm64 checkout")
def test_pins_match_the_shared_runner_readme(build):
    readme = SHARED_README.read_text()
    for source in build.SOURCES:
        assert source.rev in readme, source
        assert source.url.split("/")[-2] in readme, source  # the GitHub owner


def test_dry_run_prints_clones_links_and_make_without_running(build, tmp_path, capsys):
    out = tmp_path / "runner"
    assert build.main(["--out", str(out), "--jobs", "3", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    clones = [line for line in lines if line.startswith("git clone")]
    assert len(clones) == len(build.SOURCES)
    assert any("checkout --detach v0.16.0" in line for line in lines)
    make = next(line for line in lines if line.startswith("make "))
    assert "-f Makefile.full" in make and "-j3" in make and f"SRC_ROOT={out / 'src'}" in make
    assert any(line.endswith(str(out / "src" / "tensorflow" / "lite")) for line in lines)
    assert not out.exists()  # nothing cloned or built


def test_bad_arguments_are_rejected(build):
    with pytest.raises(SystemExit):
        build.parse_args([])  # --out is required
    with pytest.raises(SystemExit):
        build.parse_args(["--out", "x", "--jobs", "0"])
    args = build.parse_args(["--out", "x", "--src", "y"])
    assert args.src.name == "y" and args.out.name == "x"
