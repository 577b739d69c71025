"""The decoded-raw cache lives in the user cache folder, never in the user's repository."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner

from curate.common.cachedir import cache_root
from curate.thumbs import cache_dir as thumbs_dir
from train.cache import cache_usage, clear_cache, default_cache_dir
from train.cli import main
from train.config import RunConfig, load_config


def test_cache_root_order(monkeypatch, tmp_path):
    monkeypatch.setenv("SIDKIT_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "mine"
    assert default_cache_dir() == tmp_path / "mine" / "raw" and thumbs_dir() == tmp_path / "mine" / "thumbs"
    monkeypatch.delenv("SIDKIT_CACHE")
    assert cache_root() == tmp_path / "xdg" / "sidkit"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")   # the XDG spec: relative paths are invalid
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "sidkit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == tmp_path / "home" / ".cache" / "sidkit"


def test_tests_never_touch_the_real_cache(sidkit_cache):
    assert cache_root() == sidkit_cache and Path.home() / ".cache" not in sidkit_cache.parents


def test_run_config_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SIDKIT_CACHE", str(tmp_path / "c"))
    config = RunConfig(manifest=str(tmp_path / "repo" / "manifests" / "m.csv"), device="cpu").resolved()
    assert config.cache_dir == str(tmp_path / "c" / "raw")
    flagged = load_config(None, manifest="m.csv", device="cpu", cache_dir=str(tmp_path / "x")).resolved()
    assert flagged.cache_dir == str(tmp_path / "x")
    (tmp_path / "run.toml").write_text(f'cache_dir = "{tmp_path / "y"}"\n')
    assert load_config(tmp_path / "run.toml", manifest="m.csv", device="cpu").resolved().cache_dir == str(tmp_path / "y")


def test_train_cache_shows_size_and_clears_only_its_entries(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    np.save(folder / "0123456789abcdef-packed-aaaaaaaaaaaa.npy", np.zeros(1000, np.uint16))
    np.save(folder / "0123456789abcdef-truth-bbbbbbbbbbbb.npy", np.zeros(500, np.uint16))
    (folder / ".0123456789abcdef-truth-bbbbbbbbbbbb.npy.k3j2.tmp").write_bytes(b"x" * 10)  # a killed fill
    (folder / "notes.txt").write_text("mine")
    usage = cache_usage(folder)
    assert usage["files"] == 4 and usage["bytes"] == sum(p.stat().st_size for p in folder.iterdir())
    shown = CliRunner().invoke(main, ["cache", "--cache-dir", str(folder)])
    assert shown.exit_code == 0 and f"{folder}: 4 files, 0.0 MB" in shown.output
    cleared = CliRunner().invoke(main, ["cache", "--cache-dir", str(folder), "--clear"])
    assert cleared.exit_code == 0 and f"removed 3 files, 0.0 MB from {folder}" in cleared.output
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    assert clear_cache(tmp_path / "absent") == {"folder": str(tmp_path / "absent"), "files": 0, "bytes": 0}
