"""The documentation site builds with ``mkdocs build --strict``, and documents what it should.

The API pages are generated from the docstrings (mkdocstrings, numpy style), so a broken
docstring, a dead link or a page missing from the nav fails here, as it would in CI's docs build.
The guide's code is checked too: every Python block compiles, and every ``marscraters`` name it
imports or uses as ``mc.NAME`` exists.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# the package's public modules (private ones start with "_"; the command line is documented by --help)
MODULES = sorted(
    p.stem for p in (ROOT / "marscraters").glob("*.py") if not p.stem.startswith("_") and p.stem != "cli"
)
GUIDE_PAGES = ["install", "data", "ingest", "train", "segment", "catalogs", "evaluate"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs", reason="the [docs] extra is not installed")
    pytest.importorskip("mkdocstrings", reason="the [docs] extra is not installed")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return out


def _html(site: Path, page: str) -> str:
    path = site / page / "index.html"
    assert path.is_file(), f"{page} was not built"
    return path.read_text(encoding="utf-8")


def test_every_public_module_has_an_api_page():
    pages = {p.stem for p in (DOCS / "api").glob("*.md")}
    assert set(MODULES) <= pages, f"modules without docs/api/<module>.md: {sorted(set(MODULES) - pages)}"
    for module in MODULES:
        text = (DOCS / "api" / f"{module}.md").read_text()
        assert f"::: marscraters.{module}" in text


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("model", ["symmetric_unet", "load_model", "predict_image"]),
        ("catalog", ["write_catalog", "read_catalog", "filter_catalog", "make_catalog"]),
        ("mosaic", ["ingest", "open_mosaic", "fill_missing"]),
        ("segment", ["segment", "segment_to_zarr", "partial_store_path"]),
        ("cluster", ["cluster", "preload_model"]),
        ("assemble", ["catalog_from_probability"]),
        ("evaluate", ["evaluate", "match_craters"]),
        ("training", ["train", "TrainConfig"]),
        ("download", ["download_themis", "download_robbins"]),
        ("crs", ["Grid"]),
        ("errors", ["MarsCratersError", "OutputExistsError"]),
    ],
)
def test_api_pages_document_the_functions(site, module, names):
    html = _html(site, f"api/{module}")
    for name in names:
        # mkdocstrings gives each documented object an anchor with its full path
        assert f'id="marscraters.{module}.{name}"' in html, f"{name} missing from the {module} API page"
    # numpy sections are rendered as sections, not left as raw "Parameters\n----------" text
    assert "----------" not in html


def test_every_api_page_renders_members(site):
    for module in MODULES:
        html = _html(site, f"api/{module}")
        assert re.search(rf'id="marscraters\.{module}\.\w+"', html), f"the {module} API page documents nothing"
        # docs/hooks.py turns the docstrings' Sphinx roles into code and links
        assert not re.search(r":(func|class|data|meth|mod|attr|exc):<code>", html), f"raw Sphinx role on {module}"


def test_guide_and_reference_pages_are_built(site):
    for page in GUIDE_PAGES:
        assert "<h1" in _html(site, f"guide/{page}")
    for page in ["architecture", "install", "data", "training", "model_card", "extraction", "benchmarks",
                 "reference/catalogs"]:
        _html(site, page)
    # the catalog schema is included from catalogs/README.md, not copied
    assert "Robbins tile pixel columns" in _html(site, "reference/catalogs")


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def _guide_files() -> list[Path]:
    return sorted((DOCS / "guide").glob("*.md")) + [DOCS / "index.md"]


@pytest.mark.parametrize("page", _guide_files(), ids=lambda p: p.name)
def test_guide_code_uses_real_names(page):
    import marscraters as mc

    for block in _python_blocks(page.read_text(encoding="utf-8")):
        if block.lstrip().startswith(">>>"):
            continue  # an interactive session shows output; nothing to compile
        tree = ast.parse(block, filename=str(page))  # a SyntaxError names the page
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("marscraters"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{page.name}: {node.module} has no {alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("marscraters"):
                        importlib.import_module(alias.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "mc":
                assert hasattr(mc, node.attr), f"{page.name}: marscraters has no {node.attr}"
    # names in the prose's inline code too (`mc.coarsen_mosaic(...)`), attribute by attribute
    for chain in re.findall(r"`(mc(?:\.[A-Za-z_]\w*)+)", page.read_text(encoding="utf-8")):
        obj = mc
        for name in chain.split(".")[1:]:
            assert hasattr(obj, name), f"{page.name}: `{chain}`: {obj!r} has no {name}"
            obj = getattr(obj, name)
    # and `marscraters.module.name`: the longest importable module, then its attributes
    for chain in re.findall(r"`(marscraters(?:\.[A-Za-z_]\w*)+)", page.read_text(encoding="utf-8")):
        parts = chain.split(".")
        for k in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:k]))
                break
            except ImportError:
                continue
        for name in parts[k:]:
            assert hasattr(obj, name), f"{page.name}: `{chain}`: {obj!r} has no {name}"
            obj = getattr(obj, name)


def _shell_commands(text: str) -> list[str]:
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("marscraters "):
                commands.append(line)
    return commands


@pytest.mark.parametrize("page", _guide_files(), ids=lambda p: p.name)
def test_guide_commands_parse(page, capsys):
    """Every ``marscraters ...`` command shown in the guide is accepted by the real argument parser."""
    import shlex

    from marscraters.cli import build_parser

    parser = build_parser()
    for command in _shell_commands(page.read_text(encoding="utf-8")):
        try:
            parser.parse_args(shlex.split(command)[1:])
        except SystemExit as exc:  # argparse exits 2 on a bad option (0 for --version/--help)
            assert exc.code == 0, f"{page.name}: `{command}` is rejected: {capsys.readouterr().err}"


def test_every_page_is_in_the_nav():
    """A page outside the nav is built but unreachable; mkdocs only says so at INFO level."""
    yaml = pytest.importorskip("yaml")

    def pages(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, list):
            for item in node:
                yield from pages(item)
        elif isinstance(node, dict):
            for value in node.values():
                yield from pages(value)

    nav = set(pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]))
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert on_disk <= nav, f"pages missing from mkdocs.yml's nav: {sorted(on_disk - nav)}"
