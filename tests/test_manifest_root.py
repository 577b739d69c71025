"""Issue 18, item 3: a manifest's rows travel with the folder their paths start from (curate.manifest.Manifest),
and a path with no folder known is an error, never resolved against the working folder."""
import hashlib

import pytest

from curate.common.errors import SidkitError
from curate.manifest import Manifest, path_findings, read_manifest, write_manifest
from curate.validate import file_findings, validate_manifest
from helpers import make_rows

NO_ROOT = (r"is relative and these rows have no root folder .* "
           r"read_manifest\(PATH\) or build Manifest\(rows, root=FOLDER\)")


def project(tmp_path):
    """tmp_path/project: manifests/m.csv whose rows point at ../data/... (files that exist, checksums right)."""
    rows = make_rows(n_scenes=2, shorts=1)
    for role in ("short", "long"):
        rows[f"{role}_path"] = "../data/" + rows[f"{role}_path"]
    folder = tmp_path / "project" / "manifests"
    folder.mkdir(parents=True)
    for row in rows.itertuples():
        for rel in (row.short_path, row.long_path):
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(rel.encode())
    rows["short_sha256"] = [hashlib.sha256(p.encode()).hexdigest() for p in rows.short_path]
    rows["long_sha256"] = [hashlib.sha256(p.encode()).hexdigest() for p in rows.long_path]
    return write_manifest(rows, folder / "m.csv")


def test_a_manifest_read_from_another_working_folder_resolves_against_its_own_folder(tmp_path, monkeypatch):
    path = project(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    manifest = read_manifest("../project/manifests/m.csv")
    assert manifest.root == path.parent.resolve() and str(manifest.path) == "../project/manifests/m.csv"
    short = tmp_path.resolve() / "project" / "data" / "s00" / "short_0.dng"
    assert manifest.resolve(manifest.rows.short_path[0]) == short
    assert file_findings(manifest) == []                      # every file found, checksums right
    monkeypatch.chdir(tmp_path)                               # the working folder moves on: the root stays
    assert manifest.resolve(manifest.rows.short_path[0]) == short and file_findings(manifest) == []


def test_a_subset_keeps_its_root_path_and_the_check_against_a_rewritten_file(tmp_path):
    path = project(tmp_path)
    manifest = read_manifest(path)
    subset = manifest.with_rows(manifest.rows[manifest.rows["scene_id"] == "s01"])
    assert (subset.root, subset.path, len(subset.rows)) == (manifest.root, path, 1)
    assert subset.resolve(subset.rows.long_path.iloc[0]) == path.parent.parent.resolve() / "data" / "s01" / "long.dng"
    write_manifest(make_rows(n_scenes=1), path)               # another command rewrites it meanwhile
    with pytest.raises(SidkitError, match="another command rewrote it after this one read it; nothing written"):
        write_manifest(subset, path)


def test_rows_without_a_root_refuse_to_resolve_a_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s00").mkdir()
    (tmp_path / "s00" / "long.dng").write_bytes(b"here, in the working folder")
    rows = Manifest(make_rows(n_scenes=1, shorts=1))
    with pytest.raises(SidkitError, match=NO_ROOT) as err:
        rows.resolve("s00/long.dng")                           # never the working folder's file
    assert str(err.value).startswith("the manifest: 's00/long.dng' is relative") and "\n" not in str(err.value)
    assert rows.resolve(str(tmp_path / "a.dng")) == tmp_path / "a.dng"     # an absolute path needs no root
    for check in (path_findings, validate_manifest):
        with pytest.raises(SidkitError, match=NO_ROOT):
            check(rows)


def test_a_relative_root_is_made_absolute_when_the_manifest_is_built(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    manifest = Manifest(make_rows(n_scenes=1), "data")
    monkeypatch.chdir("/")
    assert manifest.root == tmp_path / "data" and manifest.resolve("a/../b.dng") == tmp_path / "data" / "b.dng"


def test_training_keeps_the_root_and_refuses_rows_without_one(tmp_path):
    from train.cache import RawCache
    from train.synthetic import longs_manifest

    manifest = read_manifest(project(tmp_path))
    longs = longs_manifest(manifest)                          # was a copy of DataFrame.attrs by hand
    assert (longs.root, longs.path) == (manifest.root, manifest.path)
    assert (longs.rows["short_path"] == longs.rows["long_path"]).all()
    with pytest.raises(SidkitError, match=NO_ROOT):
        RawCache(tmp_path / "cache").fill(Manifest(manifest.rows), progress=False)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
