"""Names are checked whole (re.fullmatch): '$' in re.match lets a trailing newline through."""
import pytest

from capture.pair import check_scene_name
from capture.session import next_scene_name
from curate.capturelog import CaptureRecord, append_record
from curate.common.errors import SidkitError


@pytest.mark.parametrize("name", ["nl\n", "desk\n", "a\nb", "desk\r", " desk", "desk ", "desk_01", "-desk",
                                  "", "d\u00e9sk", "\uff11", None])
def test_bad_scene_names_are_refused(name):
    with pytest.raises(SidkitError, match="scene name"):
        check_scene_name(name)


@pytest.mark.parametrize("name", ["desk", "desk-lamp-01", "A1", "9"])
def test_good_scene_names_pass(name):
    assert check_scene_name(name) == name


def test_next_scene_name_counts_whole_names_only(tmp_path):
    for scene in ("scene-002", "scene-009\n", "scene-7x", "xscene-050", "scene-\u0664\u0665"):
        append_record(tmp_path, CaptureRecord(scene_id=scene, role="long", path=f"{len(scene)}.dng",
                                              requested_exposure_s=1.0, camera_exposure="1", iso=100.0,
                                              fnumber=4.0, environment="indoor", camera="Sim",
                                              captured_at="2026-01-01T00:00:00", backend="sim"))
    assert next_scene_name(tmp_path) == "scene-003"
