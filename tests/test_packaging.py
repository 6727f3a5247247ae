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
    mapping = dict(
        line.split(" = ") for line in _setup_cfg()["options"]["package_dir"].strip().splitlines()
    )
    assert mapping == {f"peft_diversity.assets.{name}": name for name in ASSETS}
    assert (asset_path("model_cards") / "model_card.md").is_file()
    assert (asset_path("recipes") / "experiments" / "demo-cpu.yaml").is_file()
    assert (asset_path("metrics") / "diversity_sim" / "diversity_sim.py").is_file()
