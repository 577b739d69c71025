import pandas as pd
import pytest

from curate.errors import SidkitError
from curate.manifest import COLUMNS, HEADER, read_manifest, write_manifest


def make_rows(n_scenes=4, shorts=2, envs=("indoor", "outdoor")):
    rows = []
    for s in range(n_scenes):
        for k in range(shorts):
            rows.append({
                "pair_id": f"s{s:02d}_{k}", "scene_id": f"s{s:02d}", "split": "train",
                "environment": envs[s % len(envs)], "short_path": f"s{s:02d}/short_{k}.dng",
                "long_path": f"s{s:02d}/long.dng", "short_exposure_s": 0.04, "long_exposure_s": 10.0,
                "ratio": 250.0, "short_iso": 100.0, "long_iso": 100.0, "short_fnumber": 8.0,
                "long_fnumber": 8.0, "camera": "Sim DSLR", "cfa": "RGGB", "black_level": "2048 2048 2048 2048",
                "white_level": 15000, "width": 128, "height": 96, "short_sha256": f"{s}{k}a",
                "long_sha256": f"{s}b"})
    return pd.DataFrame(rows)


def test_round_trip(tmp_path):
    path = write_manifest(make_rows(), tmp_path / "m.csv")
    assert path.read_text().splitlines()[0] == HEADER
    df = read_manifest(path)
    assert list(df.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert len(df) == 8 and df["ratio"].tolist() == [250.0] * 8
    assert df["white_level"].dtype == "Int64" and df.attrs["root"] == str(tmp_path.resolve())
    assert not list(tmp_path.glob(".*tmp"))


def test_write_is_atomic_on_failure(tmp_path):
    path = write_manifest(make_rows(), tmp_path / "m.csv")
    before = path.read_text()
    with pytest.raises(SidkitError):
        write_manifest(make_rows().drop(columns=["ratio"]), path)
    assert path.read_text() == before and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace(HEADER, "# sidkit-manifest v2"), "schema 'sidkit-manifest v2'"),
    (lambda t: t.replace(HEADER + "\n", ""), "not a sidkit manifest"),
    (lambda t: t.replace(",ratio,", ",rat,"), "missing column 'ratio'"),
    (lambda t: t.replace(",250,", ",abc,", 1), "row 1 (line 3), column 'ratio': 'abc' is not a number"),
    (lambda t: t.replace(",indoor,", ",cave,", 1), "column 'environment': 'cave'"),
    (lambda t: t.replace(",250,", ",20,", 1), "column 'ratio': 20 is not long_exposure_s / short_exposure_s = 250"),
    (lambda t: t.replace(",RGGB,", ",RGBX,", 1), "column 'cfa': 'RGBX'"),
    (lambda t: t.replace(",2048 2048 2048 2048,", ",2048 2048,", 1), "must be 1 or 4 black levels"),
    (lambda t: t.replace(",15000,", ",-5,", 1), "must be 1 or 4 black levels below the white level"),
])
def test_bad_manifests_name_the_column_and_row(tmp_path, edit, message):
    path = write_manifest(make_rows(), tmp_path / "m.csv")
    path.write_text(edit(path.read_text()))
    with pytest.raises(SidkitError) as err:
        read_manifest(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_missing_manifest(tmp_path):
    with pytest.raises(SidkitError, match="curate scan"):
        read_manifest(tmp_path / "nope.csv")
