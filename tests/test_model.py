"""train.networks.unet: the SID U-Net, its spec, presets and parameter counts (every family's presets)."""
import pytest
import torch

from train.networks import PRESET_HELP, PRESETS, build_model, count_parameters
from train.networks.unet import UNetSpec

# Counted once from the built networks; 'sid' is the paper's 7,760,748.
EXPECTED_PARAMETERS = {
    "sid": 7_760_748,
    "outside-in-1": 7_706_524, "outside-in-2": 7_487_900, "outside-in-3": 6_608_284, "outside-in-4": 3_079_580,
    "inside-out-1": 4_581_228, "inside-out-2": 3_605_868, "inside-out-3": 3_271_788, "inside-out-4": 3_079_580,
    "no-middle": 3_958_636, "extra-conv": 11_688_236, "single-layer": 3_833_260,
    "nafnet": 29_162_604, "nafnet-sid": 7_602_540, "nafnet-small": 1_138_652,
}


def test_default_spec_is_the_papers_network():
    assert UNetSpec() == PRESETS["sid"]
    assert count_parameters(build_model(UNetSpec())) == 7_760_748


def test_sid_parameters_by_hand():
    conv = lambda i, o, k=3: i * o * k * k + o
    encoder = conv(4, 32) + conv(32, 32) + conv(32, 64) + conv(64, 64) + conv(64, 128) + conv(128, 128) \
        + conv(128, 256) + conv(256, 256) + conv(256, 512) + conv(512, 512)
    decoder = sum(conv(2 * w, w) + conv(w, w) + conv(2 * w, w, 2) for w in (256, 128, 64, 32))
    assert encoder + decoder + conv(32, 12, 1) == 7_760_748


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_runs_and_has_its_size(name):
    torch.manual_seed(0)
    model = build_model(PRESETS[name])
    with torch.no_grad():
        out = model(torch.rand(1, 4, 64, 64))
    assert out.shape == (1, 3, 128, 128)
    assert torch.isfinite(out).all()
    assert count_parameters(model) == EXPECTED_PARAMETERS[name]
    assert PRESET_HELP[name]


def test_presets_remove_the_intended_pairs():
    assert PRESETS["outside-in-2"].encoder_convs == (0, 0, 2, 2) == PRESETS["outside-in-2"].decoder_convs
    assert PRESETS["inside-out-1"].encoder_convs == (2, 2, 2, 0) == PRESETS["inside-out-1"].decoder_convs
    assert PRESETS["no-middle"].bottleneck_convs == 0 and PRESETS["no-middle"].encoder_convs == (2, 2, 2, 2)
    assert PRESETS["extra-conv"].encoder_convs == (3, 3, 3, 3)
    assert PRESETS["single-layer"].decoder_convs == (1, 1, 1, 1)
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in build_model(PRESETS["outside-in-1"]).modules())
    assert convs == 19 - 4   # the paper has 18 3x3 convs and the 1x1 head; level 0 loses 2 + 2


def test_any_input_size_is_padded_and_cropped_back():
    model = build_model(PRESETS["sid"])
    with torch.no_grad():
        assert model(torch.rand(1, 4, 37, 50)).shape == (1, 3, 74, 100)


def test_spec_round_trips_through_plain_types(tmp_path):
    spec = UNetSpec(in_channels=9, widths=(16, 32, 64), encoder_convs=(1, 2), decoder_convs=(2, 0),
                    bottleneck_convs=3, upscale=3)
    data = spec.to_dict()
    torch.save({"spec": data}, tmp_path / "c.pt")
    loaded = torch.load(tmp_path / "c.pt", weights_only=True)["spec"]
    assert UNetSpec.from_dict(loaded) == spec
    assert data.pop("family") == "unet" and all(isinstance(v, (int, float, list)) for v in data.values())
    with torch.no_grad():
        assert build_model(spec)(torch.rand(1, 9, 12, 12)).shape == (1, 3, 36, 36)


def test_bad_spec_is_refused():
    with pytest.raises(ValueError, match="encoder_convs needs 4"):
        UNetSpec(encoder_convs=(2, 2))


def test_a_training_step_reduces_the_loss():
    torch.manual_seed(0)
    model = build_model(PRESETS["single-layer"])
    x, y = torch.rand(2, 4, 32, 32), torch.rand(2, 3, 64, 64)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = (model(x) - y).abs().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
