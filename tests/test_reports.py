"""curate report and train report: the pages' numbers, bad files as badges, labelled sheets, and both
pages opened in a real headless Chromium (skipped where it cannot run): images render, counts match."""
from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from curate.cli import main as curate_main
from curate.common.errors import SidkitError
from curate.manifest import read_manifest, write_manifest
from curate.report import build_report as dataset_report, histogram_svg, load_findings
from curate.thumbs import cache_dir
from curate.scan import scan_dataset
from curate.validate import validate_manifest
from helpers import tiny_config
from train.cli import main as train_main
from train.report import build_report as runs_report
from train.runfolders import markdown_tables, read_evaluation
from train.sheets import labelled_sheet

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000")


# ---------------------------------------------------------------- fixtures

@pytest.fixture(autouse=True)
def thumbs_cache(tmp_path, monkeypatch):
    """Thumbnails go to a per-test cache (SIDKIT_CACHE), never the user's ~/.cache."""
    monkeypatch.setenv("SIDKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "thumbs"


@pytest.fixture(scope="module")
def dataset_manifest(sim_dataset, tmp_path_factory) -> Path:
    """The simulated dataset (4 scenes, 8 pairs, 3 planted defects) scanned into a manifest."""
    folder = tmp_path_factory.mktemp("manifest")
    df, _ = scan_dataset(sim_dataset, folder, test=0.25, val=0.0)
    return write_manifest(df, folder / "sim.csv")


@pytest.fixture(scope="module")
def findings(dataset_manifest) -> list[dict]:
    """Every finding, pixel checks included, as `curate validate --format json` prints them."""
    return [f.to_dict() for f in validate_manifest(read_manifest(dataset_manifest))]


@pytest.fixture(scope="module")
def runs(tiny_manifest, tiny_run, tmp_path_factory) -> tuple[Path, list[Path]]:
    """Two tiny runs as a two-setting sweep, each evaluated on all splits: a copy of the shared
    tiny_run (lr 1e-2, 6 epochs) and one trained here at lr 1e-3 for 4 epochs."""
    from train.evaluate import evaluate
    from train.loop import train_run

    sweep = tmp_path_factory.mktemp("runs") / "sweep"
    high = shutil.copytree(tiny_run, sweep / "lr-high")
    low = train_run(tiny_config(tiny_manifest, sweep / "lr-low", epochs=4, eval_every=2, lr=1e-3), progress=False)
    for run in (high, low):
        evaluate(run / "checkpoints" / "last.pt", tiny_manifest, split="all", out=run)
    return tiny_manifest, [high, low]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not found:
        pytest.skip("no chromium on PATH (`apt-get install chromium`)")
    return found


def run_chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    flags = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}"]
    try:
        done = subprocess.run(flags + args, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"chromium cannot run here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"chromium cannot run here: {done.stderr.strip()[-300:]}")
    return done


def dump_dom(page: Path, tmp_path: Path, fragment: str = "") -> str:
    """The DOM after the page's scripts ran (``fragment``: '#code=misaligned' sets the filters)."""
    dom = run_chromium(["--dump-dom", page.resolve().as_uri() + fragment], tmp_path).stdout
    if "<body" not in dom:
        pytest.skip("chromium printed no DOM here")
    return dom


def browse(page: Path, tmp_path: Path, name: str, height: int = 1000) -> tuple[str, np.ndarray]:
    """(the DOM after the page's scripts ran, the screenshot as an array) from headless Chromium."""
    dom = dump_dom(page, tmp_path)
    shot = tmp_path / f"{name}.png"
    run_chromium([f"--window-size=1400,{height}", f"--screenshot={shot}", page.resolve().as_uri()], tmp_path)
    if not shot.is_file():
        pytest.skip("chromium wrote no screenshot here")
    return dom, np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)


def body_data(dom: str) -> dict[str, str]:
    tag = re.search(r"<body([^>]*)>", dom).group(1)
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', tag))


def counts(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-count="([^"]+)">(\d+)<', text)}


# ---------------------------------------------------------------- curate report

def test_dataset_page_counts_badges_and_thumbnails(dataset_manifest, findings, tmp_path, thumbs_cache):
    df = read_manifest(dataset_manifest).rows
    done = dataset_report(dataset_manifest, tmp_path / "r.html", findings)
    text = (tmp_path / "r.html").read_text()
    assert done["pairs"] == len(df) == 8 and done["thumbnails"] == 16 and done["missing_thumbnails"] == 0
    shown = counts(text)
    assert shown["pairs"] == 8 and shown["scenes"] == 4 and shown["findings"] == len(findings)
    for (split, env), group in df.groupby(["split", "environment"]):
        assert shown[f"pairs:{split}:{env}"] == len(group)
        assert shown[f"scenes:{split}:{env}"] == group["scene_id"].nunique()
    for split, group in df.groupby("split"):
        assert shown[f"pairs:{split}:all"] == len(group)
    codes = {f["code"] for f in findings}
    assert {"ratio-out-of-range", "misaligned", "measured-ratio-mismatch"} <= codes   # the planted defects
    for code in codes:
        assert int(re.search(rf'data-finding-count="{code}">(\d+)<', text).group(1)) == \
            sum(f["code"] == code for f in findings)
    moved = next(f["pair_id"] for f in findings if f["code"] == "misaligned")
    card = re.search(rf'<article class="pair"[^>]*data-codes="([^"]*)"><h3>{re.escape(moved)} ', text)
    assert "misaligned" in card.group(1).split()
    assert text.count('<img data-src="data:image/jpeg;base64,') == 16
    # one thumbnail per raw file and amplification, cached by checksum: 4 longs + 8 shorts
    assert len(list(thumbs_cache.glob("*.jpg"))) == 12
    assert {p.name.split("-")[0] for p in thumbs_cache.glob("*.jpg")} == set(df["short_sha256"]) | set(df["long_sha256"])


def test_a_longs_only_page_shows_each_long_once_without_ratios(sim_dataset, tmp_path):
    df, _ = scan_dataset(sim_dataset, tmp_path, test=0.25, val=0.0, longs_only=True)
    manifest = write_manifest(df, tmp_path / "longs.csv")
    result = CliRunner().invoke(curate_main, ["report", str(manifest), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert "thumbnails: 4/4, done" in result.stderr                     # one picture a long, not two
    text = (tmp_path / "r.html").read_text()
    assert text.count('<img data-src="data:image/jpeg;base64,') == len(df) == 4
    assert "4</span> long exposures (each its own short)" in text and "ratio (long / short)" not in text
    assert "ISO (long)" in text and ">ratio 1<" not in text and "longs-only" in text


def test_thumbnails_come_from_the_cache_the_second_time(dataset_manifest, tmp_path, thumbs_cache, monkeypatch):
    dataset_report(dataset_manifest, tmp_path / "a.html", [])
    assert cache_dir() == thumbs_cache
    import curate.thumbs as thumbs

    def no_decoding(*args, **kwargs):
        raise AssertionError("read a raw although its thumbnail and checksum are cached")

    monkeypatch.setattr(thumbs, "render_small", no_decoding)
    monkeypatch.setattr("curate.rawmeta.sha256_file", no_decoding)   # checksums remembered by size and mtime
    dataset_report(dataset_manifest, tmp_path / "b.html", [])
    assert (tmp_path / "a.html").read_text() == (tmp_path / "b.html").read_text()


@pytest.mark.slow
def test_a_pool_of_workers_renders_the_same_page(dataset_manifest, tmp_path):
    steps = []
    one = dataset_report(dataset_manifest, tmp_path / "one.html", [], cache=False, workers=1, progress=steps.append)
    two = dataset_report(dataset_manifest, tmp_path / "two.html", [], cache=False, workers=2)
    assert (tmp_path / "one.html").read_text() == (tmp_path / "two.html").read_text()
    assert one["thumbnails"] == two["thumbnails"] == 16
    assert sum(steps) == 16 and len(steps) == 12 and steps.count(2) == 4   # 4 longs serve 2 shorts each


def test_short_thumbnail_is_amplified_to_the_long_s_brightness(dataset_manifest):
    from curate.manifest import black_levels
    from curate.thumbs import render_small

    loaded = read_manifest(dataset_manifest)
    row = loaded.rows[loaded.rows["ratio"].astype(float) > 100].iloc[0]
    black, white = black_levels(row.black_level), float(row.white_level)
    long = render_small(loaded.resolve(row.long_path), black, white).mean()
    dark = render_small(loaded.resolve(row.short_path), black, white).mean()
    bright = render_small(loaded.resolve(row.short_path), black, white, float(row.ratio)).mean()
    assert dark < 0.2 * long and abs(bright - long) < 0.15 * long


def test_a_bad_file_is_a_badge_not_a_traceback(dataset_manifest, sim_dataset, tmp_path):
    folder = shutil.copytree(sim_dataset, tmp_path / "broken")
    loaded = read_manifest(dataset_manifest)
    df = loaded.rows
    for column in ("short_path", "long_path"):
        df[column] = [str(folder / loaded.resolve(rel).relative_to(sim_dataset)) for rel in df[column]]
    write_manifest(df, folder / "m.csv")
    first = df.iloc[0]
    Path(first.short_path).write_bytes(b"not a raw file at all")
    Path(df.iloc[-1].long_path).unlink()
    result = CliRunner().invoke(curate_main, ["report", str(folder / "m.csv"), "-o", str(tmp_path / "b.html")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "b.html").read_text()
    assert f"unreadable: {Path(first.short_path).name}" in text
    assert f"missing-file: {Path(df.iloc[-1].long_path).name}" in text
    assert 'class="badge error" title="file does not exist' in text    # the fast checks' finding
    # the fast checks do not decode pixels: the unreadable short is a finding of the report itself
    assert re.search(r'class="badge error" title="[^"]*found while rendering its thumbnail\)">unreadable<', text)
    assert int(re.search(r'data-finding-count="unreadable">(\d+)<', text).group(1)) == 1
    codes = re.search(rf'data-codes="([^"]*)"><h3>{re.escape(first.pair_id)} ', text).group(1).split()
    assert codes == ["checksum-mismatch", "unreadable"]     # filterable like any finding
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_real_camera_raws_render_or_say_why(raw_samples, tmp_path):
    """Every sample raw (many truncated on purpose, two demosaiced 'Stack' raws) is a picture or a reason
    (each file stands as its own short: a longs-only manifest, one picture a row)."""
    from helpers import make_rows

    files = sorted(p for p in raw_samples.iterdir() if p.suffix.lower() not in (".md", ".txt"))
    df = make_rows(n_scenes=len(files), shorts=1)
    df["short_path"] = df["long_path"] = [str(p) for p in files]
    df["short_sha256"] = df["long_sha256"] = ""
    write_manifest(df, tmp_path / "m.csv")
    done = dataset_report(tmp_path / "m.csv", tmp_path / "r.html", [])
    text = (tmp_path / "r.html").read_text()
    assert done["thumbnails"] + done["missing_thumbnails"] == len(files)
    assert done["thumbnails"] >= 4 and done["missing_thumbnails"] >= 4
    assert text.count('class="noimg">unreadable: ') == done["missing_thumbnails"]
    for name in ("DNG.dng", "Panasonic.rw2", "IMG_1361.dng"):      # Bayer DNG, RW2 and a linear DNG
        assert f'alt="long exposure of {df[df["long_path"].str.endswith(name)].iloc[0].pair_id}"' in text


def test_findings_file_errors_are_one_line(dataset_manifest, tmp_path):
    bad = tmp_path / "f.json"
    bad.write_text("{not json")
    with pytest.raises(SidkitError, match="not JSON"):
        load_findings(bad)
    bad.write_text('{"code": "misaligned"}')
    result = CliRunner().invoke(curate_main, ["report", str(dataset_manifest), "-o", str(tmp_path / "x.html"),
                                              "--findings", str(bad)])
    assert result.exit_code == 1 and "expected a list of findings" in result.output
    assert not (tmp_path / "x.html").exists()


def test_histogram_marks_ratios_outside_the_range():
    svg = histogram_svg([20, 250, 250, 300], "ratio", log=True, good=(100, 300))
    assert svg.count('class="bad"') == 1 and svg.count('class="bar"') == 2 and ">2<" in svg
    many = histogram_svg(list(range(100, 3300, 100)), "ISO")
    assert many.count("<rect") == 12


# ---------------------------------------------------------------- sheets and train report

def test_labelled_sheet_keeps_the_panels_and_draws_labels():
    rng = np.random.default_rng(0)
    panels = [rng.random((96, 128, 3)).astype(np.float32) for _ in range(3)]
    sheet = labelled_sheet([(panels[0], "amplified input", {"psnr": 21.5, "ssim": 0.61}),
                            (panels[1], "network", {"psnr": 30.25, "ssim": 0.9}), (panels[2], "ground truth", None)])
    band = sheet.shape[0] - 96
    assert sheet.shape == (96 + band, 3 * 128 + 2 * 4, 3) and band >= 10
    for i, panel in enumerate(panels):   # pixels unchanged (to 8 bits) under the band
        left = i * (128 + 4)
        assert np.abs(sheet[band:, left: left + 128] - panel).max() <= 0.5 / 255 + 1e-6
    labels = sheet[:band]
    for i in range(3):
        text = labels[:, i * 132: i * 132 + 128]
        assert (text > 0.8).any() and (text < 0.2).mean() > 0.5   # light letters on a dark band


def test_large_sheets_are_embedded_as_jpeg(tmp_path):
    import base64

    from train.report import SHEET_BYTES, sheet_uri

    noise = np.random.default_rng(1).integers(0, 256, (600, 1800, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "big-sheet.png")
    Image.fromarray(noise[:60, :180]).save(tmp_path / "small-sheet.png")
    assert (tmp_path / "big-sheet.png").stat().st_size > SHEET_BYTES
    big, small = sheet_uri(tmp_path / "big-sheet.png"), sheet_uri(tmp_path / "small-sheet.png")
    assert big.startswith("data:image/jpeg;base64,") and small.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(big.split(",", 1)[1]))) as image:
        assert image.size == (1600, 533)
    assert base64.b64decode(small.split(",", 1)[1]) == (tmp_path / "small-sheet.png").read_bytes()


@pytest.mark.slow
def test_markdown_tables_and_evaluation_from_report_md(runs):
    _, (run, _) = runs
    summary, images, note = read_evaluation(run)
    assert [(r["split"], r["environment"]) for r in summary][-1] == ("test", "all")
    assert len(images) == 4 and all(10 < r["psnr"] < 60 for r in images) and "epoch 6" in note
    tables = markdown_tables((run / "report.md").read_text())
    assert len(tables) == 2 and tables[0][0]["split"] == "train"


@pytest.mark.slow
def test_runs_page_numbers_match_the_evaluation(runs, tmp_path):
    _, folders = runs
    result = CliRunner().invoke(train_main, ["report", str(folders[0].parent), "-o", str(tmp_path / "r.html"),
                                             "--sheets", "2"])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "r.html").read_text()
    assert counts(text)["runs"] == 2
    for run in folders:
        summary, _, _ = read_evaluation(run)
        for r in summary:
            key = f'{r["split"]}:{r["environment"]}'
            cell = re.search(rf'data-run="{run.name}" data-key="{key}:psnr">([^<]*)<', text).group(1)
            assert float(cell) == pytest.approx(r["psnr"], abs=0.006)
    assert text.count('<figure class="sheet">') == 4 and "2 of 4 sheets, lowest PSNR first" in text
    assert text.count('src="data:image/png;base64,') == 1 + 4      # the curves and the sheets
    assert text.count("<summary>config.toml</summary>") == 2 and "lr = 0.001" in text


@pytest.mark.slow
def test_a_sweep_run_is_read_from_its_eval_folder(runs, tmp_path):
    """`train sweep` evaluates into <run>/eval/ and names the setting in result.json."""
    _, (run, _) = runs
    swept = shutil.copytree(run, tmp_path / "sweep" / "lr-1e-2")
    (swept / "eval").mkdir()
    shutil.move(swept / "report.md", swept / "eval" / "report.md")
    shutil.move(swept / "outputs", swept / "eval" / "outputs")
    (swept / "result.json").write_text('{"setting": "lr 1e-2", "psnr": 1.0}')
    done = runs_report([tmp_path / "sweep"], tmp_path / "s.html", sheets=0)
    text = (tmp_path / "s.html").read_text()
    assert done["runs"] == ["lr-1e-2"] and done["sheets"] == 4 and "<td>lr 1e-2</td>" in text
    assert text.count('<figure class="sheet">') == 4 and 'data-key="test:all:psnr"' in text


def test_train_report_refuses_a_folder_without_runs(tmp_path):
    result = CliRunner().invoke(train_main, ["report", str(tmp_path), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 1 and "not a run folder" in result.output and not (tmp_path / "r.html").exists()


# ---------------------------------------------------------------- in a real browser

@pytest.mark.slow
def test_dataset_page_in_chromium(dataset_manifest, findings, tmp_path):
    page = tmp_path / "dataset.html"
    dataset_report(dataset_manifest, page, findings, page_size=6)
    dom, shot = browse(page, tmp_path, "dataset", height=2200)
    data = body_data(dom)
    assert data["visible-pairs"] == "6"                          # page 1 of 2 at 6 pairs a page
    assert data["images-shown"] == data["images-rendered"] == "12"
    assert re.search(r'id="page"[^>]*>page 1 of 2<', dom) and "8 of 8 pairs match" in dom
    df = read_manifest(dataset_manifest).rows
    shown = counts(dom)
    assert shown["pairs"] == len(df) and shown["findings"] == len(findings)
    for (split, env), group in df.groupby(["split", "environment"]):
        assert shown[f"pairs:{split}:{env}"] == len(group)
    assert shot.std() > 20                                        # pictures, not a blank page
    top = shot[: 250].std(axis=(0, 1))                            # header: text, table, histograms
    cards = shot[400:].reshape(-1, 3).std(axis=0)
    assert top.mean() > 10 and cards.mean() > 20
    # the filters, set from the address as a person's link would: the pairs they leave match the data
    code = "ratio-out-of-range"
    flagged = {f["pair_id"] for f in findings if f["code"] == code}
    dom = dump_dom(page, tmp_path, f"#code={code}")
    assert f"{len(flagged)} of 8 pairs match" in dom and body_data(dom)["visible-pairs"] == str(len(flagged))
    split, env = df[["split", "environment"]].iloc[-1]
    dom = dump_dom(page, tmp_path, f"#split={split}&env={env}&page=9")
    wanted = ((df["split"] == split) & (df["environment"] == env)).sum()
    assert f"{wanted} of 8 pairs match" in dom and re.search(r'id="page"[^>]*>page 1 of 1<', dom)


@pytest.mark.slow
def test_runs_page_in_chromium(runs, tmp_path):
    _, folders = runs
    page = tmp_path / "runs.html"
    runs_report(folders, page, sheets=1)
    dom, shot = browse(page, tmp_path, "runs")
    data = body_data(dom)
    assert data["images-shown"] == data["images-rendered"] == "3"   # curves + one sheet per run
    assert all(f'data-run="{run.name}"' in dom for run in folders)
    assert shot.std() > 20


@pytest.mark.slow
def test_screenshot_check_fails_on_a_blank_page(tmp_path):
    """The not-blank measure above tells an empty page from a rendered one."""
    page = tmp_path / "blank.html"
    page.write_text('<!DOCTYPE html><html><body style="background:#fafafa"><img src="data:image/png;base64,AAAA">'
                    "<script>window.addEventListener('load',function(){var i=document.querySelector('img');"
                    "document.body.dataset.imagesRendered=i.naturalWidth>0?1:0;});</script></body></html>")
    dom, shot = browse(page, tmp_path, "blank")
    assert body_data(dom)["images-rendered"] == "0" and shot.std() < 5
