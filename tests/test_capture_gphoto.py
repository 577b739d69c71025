"""The libgphoto2 backend against the REAL virtual camera in python-gphoto2's wheel.

What the virtual camera is (explored with python-gphoto2 2.6.3 / libgphoto2 2.5.33):
- it exists when VCAMERADIR names a folder before gphoto2 is imported; autodetect lists
  ('Nikon DSC D750', 'usb:001,001'); the summary says Manufacturer GP, Model VC, serial 0.1;
- config: shutterspeed (RADIO, '1.0000s' '0.1000s' '0.0500s' '0.0200s' '0.0100s' '0.0050s'
  '0.0025s' '0.0012s' '0.0001s'), f-number ('f/2.8' ... 'f/22'), capturetarget ('Internal RAM',
  'Memory card'), a `bulb` toggle, no iso and no imageformat;
- setting a value that is not a choice ('1/3') is accepted silently and reads back as '0.1000s':
  the reason every setting is read back;
- capture and trigger_capture return at once; after trigger_capture, wait_for_event gives
  FOLDER_ADDED, FILE_ADDED ('/store_00010001/DCIM/100GPHOT', 'GPH_0099.JPG'), then property
  change events keep coming; the file is a byte copy of the folder's JPEG;
- capturetarget is written to $HOME/.gphoto/settings ('ptp2=capturetarget=card' or '=sdram');
- state is per process; capture fails with -3 'Out of memory' after 26 captures.
Each test runs the camera in its own subprocess with its own VCAMERADIR and HOME.
"""
import json
import subprocess
import sys
import textwrap

import gphoto2 as gp
import pytest

from capture.gphoto import GPhotoCamera, canon_release_labels, collect_added, explain
from curate.common.errors import SidkitError




def run(env, *args, cwd=None):
    return subprocess.run([sys.executable, "-m", "capture", *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def test_detect_lists_the_virtual_camera(vcam):
    out = run(vcam, "detect")
    assert out.returncode == 0, out.stderr
    assert "Nikon DSC D750" in out.stdout and "usb:001,001" in out.stdout


def test_settings_show_ladder_and_reachable_ratios(vcam):
    out = run(vcam, "settings", "--long", "1", "--format", "json")
    assert out.returncode == 0, out.stderr
    settings = json.loads(out.stdout)
    assert settings["camera"] == "GP VC 0.1" and settings["settings"]["shutter"]["choices"][:3] == [
        "1.0000s", "0.1000s", "0.0500s"]
    assert settings["settings"]["iso"] is None and settings["settings"]["image_format"] is None
    assert [(p["short"], p["nominal_ratio"], p["true_ratio"]) for p in settings["pairs"]] == [
        ("0.0100s", 100, 101.5937), ("0.0050s", 200, 203.1873)]
    # with no --long, the body's speed nearest 10 s (its longest, 1 s), not an error for a 10 s it lacks
    table = run(vcam, "settings")
    assert table.returncode == 0, table.stderr
    assert "GP VC 0.1" in table.stdout and "(not offered)" in table.stdout
    assert "Ratios 100-300 reachable at 1 s" in table.stdout and "0.0050s" in table.stdout


def test_dry_run_plans_from_the_ladder_and_touches_nothing(vcam, tmp_path):
    out = run(vcam, "pair", "--scene", "vc-1", "--environment", "indoor", "--dataset", str(tmp_path / "ds"),
              "--long", "1", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "1.0000s / 0.0050s = 200x" in out.stdout and "vc-1/vc-1_short_1-200s_02" in out.stdout
    assert not (tmp_path / "ds").exists()
    assert not (tmp_path / "home" / ".gphoto" / "settings").exists()   # nothing was set


@pytest.mark.slow     # two `capture pair` runs on the virtual camera: about 6 s
def test_pair_downloads_every_shot_and_logs_it(vcam, tmp_path):
    ds = tmp_path / "ds"
    out = run(vcam, "pair", "--scene", "vc-1", "--environment", "outdoor", "--dataset", str(ds),
              "--long", "1", "--shorts", "2", "--target", "card", "--fnumber", "8", "--notes", "test")
    assert out.returncode == 0, out.stderr
    source = (tmp_path / "vcamdir" / "frame.jpg").read_bytes()
    names = sorted(p.name for p in (ds / "vc-1").iterdir())
    assert names == ["vc-1_long_1s.JPG", "vc-1_short_1-200s_00.JPG", "vc-1_short_1-200s_01.JPG"]
    assert all((ds / "vc-1" / n).read_bytes() == source for n in names)
    records = [json.loads(line) for line in (ds / "captures.jsonl").read_text().splitlines()]
    assert [(r["role"], r["camera_exposure"], r["fnumber"], r["iso"]) for r in records] == [
        ("long", "1.0000s", 8.0, None), ("short", "0.0050s", 8.0, None), ("short", "0.0050s", 8.0, None)]
    assert {(r["camera"], r["backend"], r["environment"], r["notes"]) for r in records} == {
        ("GP VC 0.1", "gphoto2", "outdoor", "test")}
    assert {(r["extra"]["nominal_ratio"], r["extra"]["true_ratio"]) for r in records} == {(200.0, 203.1873)}
    assert (tmp_path / "home" / ".gphoto" / "settings").read_text().strip() == "ptp2=capturetarget=card"
    # a second run in the same scene numbers on, overwrites nothing, and sets the target again
    again = run(vcam, "pair", "--scene", "vc-1", "--environment", "outdoor", "--dataset", str(ds),
                "--long", "1", "--shorts", "1")
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in (ds / "vc-1").iterdir()) == sorted(names + ["vc-1_long_1s_01.JPG", "vc-1_short_1-200s_02.JPG"])
    assert (tmp_path / "home" / ".gphoto" / "settings").read_text().strip() == "ptp2=capturetarget=sdram"


def test_ratio_out_of_range_is_refused_with_what_the_camera_reaches(vcam, tmp_path):
    out = run(vcam, "pair", "--scene", "vc-1", "--environment", "indoor", "--dataset", str(tmp_path / "ds"),
              "--long", "1", "--ratio", "400")
    assert out.returncode == 1
    assert "this camera reaches 100x (1.0000s / 0.0100s), 200x (1.0000s / 0.0050s)" in " ".join(out.stderr.split())


def test_library_on_the_virtual_camera(vcam, tmp_path):
    script = textwrap.dedent(f"""
        import locale
        from pathlib import Path
        import gphoto2 as gp
        from capture.gphoto import GPhotoCamera
        from curate.common.errors import SidkitError
        with GPhotoCamera() as cam:
            print("locale", locale.setlocale(locale.LC_NUMERIC), locale.setlocale(locale.LC_MESSAGES))
            print("fnumber", cam.set_and_verify("fnumber", "f/8"))
            try:
                cam.set_and_verify("shutter", "1/3")
            except SidkitError as exc:
                print("refused", exc)
            cam._apply("shutter", "1/3")            # what the body does with a value it lacks
            print("odd-value-reads", cam.read_settings().shutter.current)
            print("files", [p.name for p in cam.shoot(Path({str(tmp_path)!r}), "one")])
            real = cam._cam

            class Unplugged:                         # the body stops answering mid-session
                def get_config(self):
                    raise gp.GPhoto2Error(gp.GP_ERROR_IO)

                def exit(self):
                    real.exit()
            cam._cam = Unplugged()
            print("reopened", cam.read_settings().fnumber.current, type(cam._cam).__name__, cam.generation)
        try:
            GPhotoCamera("usb:009,009")
        except SidkitError as exc:
            print("port", exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], env=vcam, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert lines["locale"] == "C C"                 # nobody called setlocale: C labels
    assert lines["fnumber"] == "f/8"
    assert "shutter '1/3' is not offered; choose one of: 1.0000s" in lines["refused"]
    assert lines["odd-value-reads"] == "0.1000s"
    assert lines["files"] == "['one.JPG']"
    assert lines["reopened"] == "f/2.8 Camera 1"     # port reset, initialised again: settings are lost,
    # which is why shoot_pair applies them again after a re-initialisation
    assert lines["port"] == "no camera on port usb:009,009; `capture detect` lists: Nikon DSC D750 on usb:001,001"


# --- the traps no virtual camera shows, on plain functions and a stand-in body ---------------------
class Added:
    def __init__(self, folder, name):
        self.folder, self.name = folder, name


def scripted(events, clock):
    """wait_for_event over (at_seconds, kind, data) events; time passes as the caller waits."""
    pending = list(events)

    def wait_for_event(timeout_ms):
        if pending and pending[0][0] <= clock[0] + timeout_ms / 1000:
            at, kind, data = pending.pop(0)
            clock[0] = max(clock[0], at)
            return kind, data
        clock[0] += timeout_ms / 1000
        return gp.GP_EVENT_TIMEOUT, None
    return wait_for_event


def test_collect_waits_for_raw_and_jpeg_of_a_long_exposure():
    clock = [0.0]
    events = [(1.0, gp.GP_EVENT_UNKNOWN, "PTP Property 5001 changed"),
              (62.0, gp.GP_EVENT_FILE_ADDED, Added("/store/DCIM", "IMG_1.CR3")),
              (62.3, gp.GP_EVENT_UNKNOWN, "property"),
              (62.8, gp.GP_EVENT_FILE_ADDED, Added("/store/DCIM", "IMG_1.JPG")),
              (63.0, gp.GP_EVENT_CAPTURE_COMPLETE, None)]
    # 30 s exposure + 30 s noise reduction + margin: both files arrive after 62 s
    added = collect_added(scripted(events, clock), deadline_s=80, settle_s=1.0, clock=lambda: clock[0])
    assert added == [("/store/DCIM", "IMG_1.CR3"), ("/store/DCIM", "IMG_1.JPG")]
    assert 63.8 <= clock[0] <= 64.0                 # stopped 1 s after the last file


def test_collect_gives_up_at_the_deadline():
    clock = [0.0]
    added = collect_added(scripted([(90.0, gp.GP_EVENT_FILE_ADDED, Added("/d", "late.NEF"))], clock),
                          deadline_s=50, settle_s=1.0, clock=lambda: clock[0])
    assert added == [] and clock[0] == pytest.approx(50)


def test_busy_camera_is_drained_and_retried():
    class BusyBody:
        def __init__(self):
            self.calls, self.drains = 0, 0

        def trigger_capture(self):
            self.calls += 1
            if self.calls <= 2:
                raise gp.GPhoto2Error(gp.GP_ERROR_CAMERA_BUSY)

        def wait_for_event(self, timeout_ms):
            self.drains += 1
            return (gp.GP_EVENT_UNKNOWN, "x") if self.drains % 2 else (gp.GP_EVENT_TIMEOUT, None)

    camera = GPhotoCamera.__new__(GPhotoCamera)
    camera._cam, camera.model, camera.port = BusyBody(), "Body", "usb:1"
    camera._call("trigger_capture")
    assert (camera._cam.calls, camera._cam.drains) == (3, 4)

    class AlwaysBusy(BusyBody):
        def trigger_capture(self):
            raise gp.GPhoto2Error(gp.GP_ERROR_CAMERA_BUSY)

    camera._cam = AlwaysBusy()
    with pytest.raises(SidkitError, match=r"Body on usb:1: \[-110\] I/O in progress"):
        camera._call("trigger_capture")


def test_error_messages_say_how_to_fix():
    claim = str(explain(gp.GPhoto2Error(-53), "Canon EOS R5 on usb:001,004"))
    assert claim.startswith("Canon EOS R5 on usb:001,004: [-53] could not claim the USB device")
    assert "gvfs-gphoto2-volume-monitor" in claim and "ptpcamerad" in claim
    assert "stopped answering" in str(explain(gp.GPhoto2Error(gp.GP_ERROR_IO), "cam"))


def test_canon_release_labels_before_and_after_2_5_34():
    # before: the EOS R5 list (camlibs/ptp2/cameras/canon-eos-r5.txt)
    old = ["None", "Press Half", "Press Full", "Release Half", "Release Full", "Immediate", "Press 1",
           "Press 2", "Press 3", "Release 1", "Release 2", "Release 3"]
    assert canon_release_labels(old) == ("Immediate", "Release Full")
    # after: AF/MF variants (libgphoto2 issue #1259 uses 'Press Full MF' and 'Release')
    new = ["None", "Press Half", "Press Full MF", "Press Full AF", "Release"]
    assert canon_release_labels(new) == ("Press Full MF", "Release")
    with pytest.raises(SidkitError, match="cannot find press/release"):
        canon_release_labels(["None"])
