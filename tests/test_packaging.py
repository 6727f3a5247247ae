"""The wheel's package list: setup.cfg lists packages (find: cannot see the mapped asset folders), so every
package directory must be listed, and every mapped folder must exist with the files the code reads."""

from __future__ import annotations

import configparser
from pathlib import Path

from setuptools import find_packages

from peft_diversity.assets import ASSETS, asset_path

ROOT = Path(__file__).resolve().parents[1]


def _setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def test_every_package_directory_is_listed():
    listed = set(_setup_cfg()["options"]["packages"].split())
    found = set(find_packages(ROOT, include=["peft_diversity", "peft_diversity.*"]))
    mapped = {f"peft_diversity.assets.{name}" for name in ASSETS}
    assert listed == found | mapped


def test_mapped_asset_folders_hold_what_the_code_reads():
    mapping = dict(line.split(" = ") for line in _setup_cfg()["options"]["package_dir"].strip().splitlines())
    assert mapping == {f"peft_diversity.assets.{name}": name for name in ASSETS}
    assert (asset_path("model_cards") / "model_card.md").is_file()
    assert (asset_path("recipes") / "experiments" / "demo-cpu.yaml").is_file()
    assert (asset_path("metrics") / "diversity_sim" / "diversity_sim.py").is_file()


# ----- pin files -------------------------------------------------------------------------------------------------
def _pin_files() -> list[Path]:
    return [ROOT / "constraints.txt", *ROOT.glob("requirements*.txt")]


def _write_constraints():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "write_constraints", ROOT / "scripts" / "write_constraints.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pin_files_hold_name_version_lines_only():
    """A URL, local path or `@` direct reference installs only on the machine that wrote it."""
    pin = _write_constraints().PIN_LINE
    for path in _pin_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            assert pin.match(line) and "@" not in line and "/" not in line, f"{path.name}:{number}: {line!r}"


def test_constraints_pin_every_install_requirement():
    pinned = {
        _write_constraints().normalize(line.split("==")[0])
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    for requirement in _setup_cfg()["options"]["install_requires"].split():
        name = _write_constraints().normalize(requirement.split(">")[0].split("<")[0].split("=")[0])
        assert name in pinned, f"constraints.txt has no pin for {name}"


def test_write_constraints_writes_plain_pins(tmp_path):
    module = _write_constraints()
    lines = module.pin_lines(
        [
            ("torch", "2.13.0+cpu"),
            ("Jinja2", "3.1.6"),
            ("pip", "25.0"),
            ("peft_diversity", "0.1.0"),
            ("jinja2", "3.0.0"),
            ("gguf", "0.19.0"),
        ]
    )
    assert lines == ["gguf==0.19.0", "Jinja2==3.1.6", "torch==2.13.0"]
    out = tmp_path / "constraints.txt"
    assert module.main([str(out)]) == 0
    body = [line for line in out.read_text().splitlines() if not line.startswith("#")]
    assert body and all(module.PIN_LINE.match(line) for line in body)
    assert any(line.startswith("torch==") for line in body)
    assert not any(module.normalize(line.split("==")[0]) == "peft-diversity" for line in body)
