"""Pair planning on real camera shutter lists, and shooting on the fake body (timing, bulb, RAW+JPEG)."""
import json
from fractions import Fraction

import pytest
from fakecamera import FakeCamera

from capture.backend import choice_for_number, format_choice, save_new
from capture.pair import PairRequest, Shot, long_exposure, name_shots, plan_pair, shoot_pair
from curate.capturelog import read_log
from curate.common.errors import SidkitError

# Real shutterspeed choice lists as libgphoto2 reports them:
# Canon EOS R5: gphoto/libgphoto2 camlibs/ptp2/cameras/canon-eos-r5.txt (no Bulb in M mode;
#   note the '10.3' and '6.3' labels libgphoto2 prints for 10 s and 6 s).
CANON_R5 = ("30 25 20 15 13 10.3 8 6.3 5 4 3.2 2.5 2 1.6 1.3 1 0.8 0.6 0.5 0.4 0.3 1/4 1/5 1/6 1/8 1/10 "
            "1/13 1/15 1/20 1/25 1/30 1/40 1/50 1/60 1/80 1/100 1/125 1/160 1/200 1/250 1/320 1/400 "
            "1/500 1/640 1/800 1/1000 1/1250 1/1600 1/2000 1/2500 1/3200 1/4000 1/5000 1/6400 1/8000").split()
# Nikon D7000: gphoto/libgphoto2 issue #518 (`gphoto2 --get-config shutterspeed`).
NIKON_D7000 = ("0.0001s 0.0002s 0.0003s 0.0004s 0.0005s 0.0006s 0.0008s 0.0010s 0.0012s 0.0015s 0.0020s "
               "0.0025s 0.0031s 0.0040s 0.0050s 0.0062s 0.0080s 0.0100s 0.0125s 0.0166s 0.0200s 0.0250s "
               "0.0333s 0.0400s 0.0500s 0.0666s 0.0769s 0.1000s 0.1250s 0.1666s 0.2000s 0.2500s 0.3333s "
               "0.4000s 0.5000s 0.6250s 0.7692s 1.0000s 1.3000s 1.6000s 2.0000s 2.5000s 3.0000s 4.0000s "
               "5.0000s 6.0000s 8.0000s 10.0000s 13.0000s 15.0000s 20.0000s 25.0000s 30.0000s Bulb").split()
# Sony ILCE-7RM4: property 0xd229 of gphoto/libgphoto2 camlibs/ptp2/cameras/sony-a7r4.txt, decoded
# (value >> 16) / (value & 0xffff) as libgphoto2 labels it ('300/10', see libgphoto2 issue #276).
SONY_A7R4 = ("300/10 250/10 200/10 150/10 130/10 100/10 80/10 60/10 50/10 40/10 32/10 25/10 20/10 16/10 "
             "13/10 10/10 8/10 6/10 5/10 4/10 1/3 1/4 1/5 1/6 1/8 1/10 1/13 1/15 1/20 1/25 1/30 1/40 1/50 "
             "1/60 1/80 1/100 1/125 1/160 1/200 1/250 1/320 1/400 1/500 1/640 1/800 1/1000 1/1250 1/1600 "
             "1/2000 1/2500 1/3200 1/4000 1/5000 1/6400 1/8000").split()
# Fujifilm X-T2: gphoto/libgphoto2 issue #506 (timed speeds up to 15 minutes, no Bulb label).
FUJI_XT2 = ("1/32000 1/25000 1/20000 1/16000 1/13000 1/10000 1/8000 1/6400 1/5000 1/4000 1/3200 1/2500 "
            "1/2000 1/1600 1/1250 1/1000 1/800 1/640 1/500 1/400 1/320 1/250 1/200 1/160 1/125 1/100 1/80 "
            "1/60 1/50 1/40 1/30 1/25 1/20 1/15 1/13 1/10 1/8 1/6 1/5 1/4 1/3 0.4s 1/2 0.6s 0.8s 1s 1.3s "
            "1.6s 2s 2.5s 3s 4s 5s 6s 8s 10s 13s 15s 20s 25s 30s 40s 50s 60s 2m 4m 8m 15m").split()


def plan(labels, tmp_path, **kw):
    request = PairRequest(scene=kw.pop("scene", "s1"), environment="indoor", **kw)
    return plan_pair(FakeCamera(labels, iso_choices=("Auto", "100", "800")), request, tmp_path)


@pytest.mark.parametrize("labels, long, short_label, nominal, long_label", [
    (CANON_R5, "10", "1/25", 257.5, "10.3"),           # '10' typed, the camera's own '10.3' used
    (NIKON_D7000, "10", "0.0400s", 250, "10.0000s"),
    (SONY_A7R4, "10", "1/25", 250, "100/10"),
    (FUJI_XT2, "60", "1/4", 240, "60s"),               # timed: the X-T2 lists 60 s and has no Bulb
    (FUJI_XT2, "120", "1/2", 240, "2m"),
])
def test_ratio_chosen_from_real_ladders(labels, long, short_label, nominal, long_label, tmp_path):
    p = plan(labels, tmp_path, long=Fraction(long), iso=800)
    assert (p.pair.long_label, p.pair.short_label) == (long_label, short_label)
    assert p.pair.nominal_ratio == pytest.approx(nominal)
    assert p.pair.true_ratio == pytest.approx(256)
    assert not p.pair.bulb_long


@pytest.mark.parametrize("labels, requested, expected", [
    (CANON_R5, None, Fraction(103, 10)),          # nearest 10 s on the body: its '10.3'
    (CANON_R5, Fraction(10), Fraction(103, 10)),  # 10 typed, within 5% of '10.3'
    (NIKON_D7000, None, Fraction(10)),
    (FUJI_XT2, Fraction(120), Fraction(120)),
    (["1/30", "1/60", "1/125"], None, Fraction(1, 30)),   # a body with nothing near 10 s: its longest
])
def test_long_exposure_is_one_the_body_offers(labels, requested, expected):
    assert long_exposure(labels, requested) == expected
    with pytest.raises(SidkitError, match="no timed shutter speeds"):
        long_exposure(["Bulb"])


def test_short_given_picks_the_long(tmp_path):
    p = plan(SONY_A7R4, tmp_path, short=Fraction(1, 100), iso=800, ratio=150)
    assert (p.pair.long_label, p.pair.nominal_ratio) == ("16/10", 160)


def test_ratio_outside_range_is_refused_with_reachable_ratios(tmp_path):
    with pytest.raises(SidkitError, match=r"ratio 400 is outside 100-300.*250x \(10s / 1/25\)"):
        plan(FUJI_XT2, tmp_path, long=Fraction(10), iso=800, ratio=400)
    p = plan(FUJI_XT2, tmp_path, long=Fraction(10), iso=800, ratio=400, allow_any_ratio=True)
    assert p.pair.nominal_ratio == 400


def test_above_30s_uses_bulb_where_offered(tmp_path):
    p = plan(NIKON_D7000, tmp_path, long=Fraction(60), iso=800)
    assert p.pair.bulb_long and p.pair.short_label == "0.2500s" and p.pair.nominal_ratio == 240
    assert p.pair.true_ratio == pytest.approx(60 / 0.25)   # a bulb long is timed by the clock
    assert p.shots[0].label == "Bulb" and p.shots[0].bulb
    with pytest.raises(SidkitError, match="not on this camera's shutter list and it offers no bulb"):
        plan(CANON_R5, tmp_path, long=Fraction(60), iso=800)


def test_auto_iso_must_be_replaced(tmp_path):
    with pytest.raises(SidkitError, match="iso is on Auto; give --iso"):
        plan(CANON_R5, tmp_path, long=Fraction(10))


def test_scene_names_keep_the_underscore_free(tmp_path):
    with pytest.raises(SidkitError, match="letters, digits and '-'"):
        plan(CANON_R5, tmp_path, scene="desk_lamp", iso=800)


def test_format_and_number_choices():
    canon = ["Large Fine JPEG", "RAW + Large Fine JPEG", "RAW + Small Normal JPEG", "RAW", "cRAW"]
    nikon = ["JPEG Basic", "JPEG Fine", "NEF (Raw)", "NEF+Basic", "NEF+Fine"]
    assert format_choice(canon, "raw") == "RAW" and format_choice(nikon, "raw") == "NEF (Raw)"
    assert format_choice(canon, "raw+jpeg") == "RAW + Large Fine JPEG"
    assert format_choice(nikon, "raw+jpeg") == "NEF+Fine"
    with pytest.raises(SidkitError, match="no raw image format"):
        format_choice(["JPEG Fine"], "raw")
    assert choice_for_number(["f/2.8", "f/8"], 8, "fnumber") == "f/8"
    assert choice_for_number(["Auto", "100", "800"], 800, "iso") == "800"


def test_fake_raw_jpeg_pair_timing_and_log(tmp_path):
    camera = FakeCamera(CANON_R5 + ["bulb"], noise_reduction=True, readout_s=0.5)
    request = PairRequest(scene="s1", environment="outdoor", long=Fraction(10), shorts=2, iso=800, fnumber=8,
                          image_format="raw+jpeg", capture_target="card", repeat_long=True, notes="moon")
    p = plan_pair(camera, request, tmp_path)
    result = shoot_pair(camera, p, tmp_path)
    names = [[f.name for f in s.files] for s in result.shots]
    assert names == [["s1_long_10.3s.CR3", "s1_long_10.3s.JPG"], ["s1_short_1-25s_00.CR3", "s1_short_1-25s_00.JPG"],
                     ["s1_short_1-25s_01.CR3", "s1_short_1-25s_01.JPG"], ["s1_long_10.3s_01.CR3", "s1_long_10.3s_01.JPG"]]
    # settings were applied before the first shot and held for all
    assert {(s["iso"], s["fnumber"], s["capture_target"], s["image_format"]) for s in camera.shots} == \
        {("800", "8", "Memory card", "RAW + Large Fine JPEG")}
    assert [s["shutter"] for s in camera.shots] == ["10.3", "1/25", "1/25", "10.3"]
    # body time: two 10.3 s longs with a dark frame each, two shorts, 0.5 s readout per shot
    assert camera.clock == pytest.approx(2 * 20.6 + 2 * 0.04 + 4 * 0.5)
    records = read_log(tmp_path)
    assert [(r.role, r.path, r.extra["shot_index"]) for r in records] == [
        ("long", "s1/s1_long_10.3s.CR3", 0), ("long", "s1/s1_long_10.3s.JPG", 0),
        ("short", "s1/s1_short_1-25s_00.CR3", 1), ("short", "s1/s1_short_1-25s_00.JPG", 1),
        ("short", "s1/s1_short_1-25s_01.CR3", 2), ("short", "s1/s1_short_1-25s_01.JPG", 2),
        ("long", "s1/s1_long_10.3s_01.CR3", 3), ("long", "s1/s1_long_10.3s_01.JPG", 3)]
    first = records[0]
    assert (first.iso, first.fnumber, first.camera_exposure, first.notes, first.backend) == (800, 8, "10.3", "moon", "fake")
    assert records[1].sha256 != first.sha256 and len(records[1].sha256) == 64
    assert (first.extra["nominal_ratio"], first.extra["true_ratio"]) == (257.5, 256.0)
    assert len(first.sha256) == 64


def test_fake_bulb_long(tmp_path):
    camera = FakeCamera(NIKON_D7000, readout_s=0)
    p = plan_pair(camera, PairRequest(scene="night", environment="outdoor", long=Fraction(60), shorts=1, iso=800),
                  tmp_path)
    shoot_pair(camera, p, tmp_path)
    assert [(s["bulb"], s["seconds"], s["shutter"]) for s in camera.shots] == [(True, 60.0, "Bulb"),
                                                                               (False, 0.25, "0.2500s")]
    record = read_log(tmp_path)[0]
    assert (record.path, record.camera_exposure, record.extra["bulb"]) == ("night/night_long_60s.CR3", "bulb 60", True)


def test_a_setting_the_camera_ignores_is_an_error(tmp_path):
    camera = FakeCamera(CANON_R5, refuse=("iso",))
    p = plan_pair(camera, PairRequest(scene="s1", environment="indoor", iso=800), tmp_path)
    with pytest.raises(SidkitError, match="set iso to '800' but the camera reports '100'"):
        shoot_pair(camera, p, tmp_path)
    assert camera.shots == [] and not (tmp_path / "captures.jsonl").exists()


def test_numbering_resumes_and_never_overwrites(tmp_path):
    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / "s1_short_1-25s_00.CR3").write_bytes(b"orphan of a crash")
    order = [Shot("long", "10", Fraction(10), False, ""), Shot("short", "1/25", Fraction(1, 25), False, "")]
    assert [s.stem for s in name_shots("s1", order, tmp_path)] == ["s1/s1_long_10s", "s1/s1_short_1-25s_01"]
    with pytest.raises(SidkitError, match="already exists; captures are never overwritten"):
        save_new(tmp_path / "s1" / "s1_short_1-25s_00.CR3", b"new")
    assert (tmp_path / "s1" / "s1_short_1-25s_00.CR3").read_bytes() == b"orphan of a crash"
    assert [p.name for p in (tmp_path / "s1").iterdir()] == ["s1_short_1-25s_00.CR3"]   # no temp left


def test_log_lines_are_json_with_ratio_fields(tmp_path):
    camera = FakeCamera(SONY_A7R4)
    p = plan_pair(camera, PairRequest(scene="s2", environment="indoor", long=Fraction(10), shorts=1, iso=800,
                                      allow_any_ratio=True, ratio=50), tmp_path)
    shoot_pair(camera, p, tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "captures.jsonl").read_text().splitlines()]
    assert [(x["extra"]["short_label"], x["extra"]["nominal_ratio"], x["extra"]["allow_any_ratio"]) for x in lines] \
        == [("1/5", 50.0, True)] * 2


def test_settings_are_applied_again_after_a_reconnect(tmp_path):
    camera = FakeCamera(CANON_R5, reconnect_after_shots=2)
    p = plan_pair(camera, PairRequest(scene="s3", environment="indoor", long=Fraction(10), shorts=3, iso=800,
                                      fnumber=8), tmp_path)
    shoot_pair(camera, p, tmp_path)
    assert camera.generation == 1 and camera.values["iso"] == "800"
    assert [(s["iso"], s["fnumber"], s["shutter"]) for s in camera.shots] == \
        [("800", "8", "10.3")] + [("800", "8", "1/25")] * 3
