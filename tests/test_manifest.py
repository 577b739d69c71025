import pytest

from curate.common.errors import SidkitError
from curate.manifest import COLUMNS, HEADER, read_manifest, write_manifest

from helpers import make_rows, set_cell


def test_round_trip(tmp_path):
    path = write_manifest(make_rows(), tmp_path / "m.csv")
    assert path.read_text().splitlines()[0] == HEADER
    manifest = read_manifest(path)
    df = manifest.rows
    assert list(df.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert len(df) == 8 and df["ratio"].tolist() == [250.0] * 8
    assert df["white_level"].dtype == "Int64" and manifest.root == tmp_path.resolve() and manifest.path == path
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
    (lambda t: t.replace(",15000,", ",-5,", 1), "must be 1 or 4 black levels, each >= 0 and below the white level"),
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


@pytest.mark.parametrize("column, value, message", [
    ("long_exposure_s", "0", "column 'long_exposure_s': 0 must be a finite number of seconds above 0"),
    ("short_exposure_s", "-0.04", "column 'short_exposure_s': -0.04 must be a finite number of seconds"),
    ("long_exposure_s", "inf", "column 'long_exposure_s': inf must be a finite number"),
    ("long_exposure_s", "nan", "column 'long_exposure_s': 'nan' is not a number"),
    ("ratio", "0", "column 'ratio': 0 must be a finite number above 0"),
    ("ratio", "inf", "column 'ratio': inf must be a finite number above 0"),
    ("height", "0", "column 'height': 0 must be a whole number of pixels from 1 to 1000000"),
    ("height", "-1", "column 'height': -1 must be a whole number of pixels"),
    ("width", "1.5", "column 'width': '1.5' is not a whole number"),
    ("width", "1e300", "column 'width': '1e300' is not a whole number"),
    ("white_level", "15000.5", "column 'white_level': '15000.5' is not a whole number"),
    ("black_level", "-1e9", "columns 'black_level', 'white_level': '-1e9' / 15000 must be 1 or 4 black levels, each >= 0"),
    ("black_level", "nan nan nan nan", "columns 'black_level', 'white_level'"),
    ("black_level", "15000", "below the white level"),
    ("pair_id", "", "column 'pair_id': is empty"),
    ("scene_id", " ", "column 'scene_id': is empty"),
    ("short_path", "", "column 'short_path': is empty"),
    ("short_iso", "-100", "column 'short_iso': -100 must be empty or a finite number >= 0"),
    ("long_fnumber", "inf", "column 'long_fnumber': inf must be empty"),
])
def test_impossible_values_are_refused_with_row_and_column(tmp_path, column, value, message):
    path = write_manifest(make_rows(), tmp_path / "m.csv")
    set_cell(path, column, value, row=1)
    with pytest.raises(SidkitError) as err:
        read_manifest(path)
    assert f"{path}: row 2 (line 4), " in str(err.value) and message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_zero_exposure_with_zero_ratio_is_refused_not_a_division_by_zero(tmp_path):
    path = write_manifest(make_rows(), tmp_path / "m.csv")
    set_cell(path, "long_exposure_s", "0")
    set_cell(path, "ratio", "0")
    with pytest.raises(SidkitError, match=r"row 1 \(line 3\), column 'long_exposure_s'"):
        read_manifest(path)


def test_bom_and_crlf_are_accepted(tmp_path):
    path = write_manifest(make_rows(), tmp_path / "m.csv")
    expected = read_manifest(path).rows
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    df = read_manifest(path).rows
    assert df.equals(expected) and df["pair_id"].tolist()[0] == "s00_0"
    assert df["long_sha256"].tolist() == expected["long_sha256"].tolist()   # no '\r' kept on the last column


def test_bytes_that_are_not_utf8_name_the_line_and_split_leaves_the_file_alone(tmp_path):
    from click.testing import CliRunner

    from curate.cli import main

    path = write_manifest(make_rows(), tmp_path / "m.csv")
    set_cell(path, "camera", "Sim DSLR", row=3)
    data = path.read_bytes().replace(b"Sim DSLR", b"Sim \xe9DSLR", 4)   # latin-1 'é' on rows 1-4
    path.write_bytes(data)
    with pytest.raises(SidkitError) as err:
        read_manifest(path)
    assert str(err.value).startswith(f"{path}: line 3, byte ") and "(0xe9) is not UTF-8" in str(err.value)
    result = CliRunner().invoke(main, ["split", str(path), "--test", "0.5"])
    assert result.exit_code == 1 and "line 3" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert path.read_bytes() == data


def test_utf8_text_round_trips(tmp_path):
    rows = make_rows()
    rows["camera"] = "Sim DSLR é 暗"
    df = read_manifest(write_manifest(rows, tmp_path / "m.csv")).rows
    assert set(df["camera"]) == {"Sim DSLR é 暗"}


def test_a_binary_file_is_not_a_manifest_rather_than_bad_utf8(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b"II*\x00\x08\x00\x00\x00\xff\xfe")       # a TIFF/DNG header
    with pytest.raises(SidkitError, match="not a sidkit manifest"):
        read_manifest(path)
