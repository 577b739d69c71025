"""train run's CPU defaults follow the instruction set torch's kernels use: NHWC and bf16 where
AVX-512 (and native bf16) are in use, NCHW and float32 on AVX2 (tried here by capping the kernels
with ATEN_CPU_CAPABILITY, as an AVX2-only CPU runs them)."""
import json
import os
import subprocess
import sys

import pytest

from train.config import RunConfig, cpu_isa, default_amp, default_channels_last, native_bf16

PROBE = ("import json; from train.config import *; c = RunConfig(manifest='m.csv', device='cpu').resolved(); "
         "print(json.dumps([cpu_isa(), native_bf16(), c.channels_last, c.amp, cpu_description()]))")


def defaults_under(capability: str | None) -> list:
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    if capability:
        env["ATEN_CPU_CAPABILITY"] = capability
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_avx2_kernels_train_in_nchw_and_float32():
    isa, bf16, channels_last, amp, text = defaults_under("avx2")
    if isa != "AVX2":
        pytest.skip(f"this CPU's kernels cannot be capped at AVX2 (it runs {isa})")
    assert (bf16, channels_last, amp) == (False, False, "off")
    assert ", AVX2" in text and "with native bf16" not in text


def test_the_defaults_follow_the_kernels_in_use():
    isa, bf16, channels_last, amp, _ = defaults_under(None)
    assert isa == cpu_isa() and bf16 == native_bf16()
    assert channels_last == (isa == "AVX512") == default_channels_last("cpu")
    assert amp == ("bf16" if bf16 else "off") == default_amp("cpu")
    assert default_channels_last("cuda") and default_channels_last("cuda:1")


def test_a_config_that_names_the_layout_keeps_it():
    for value in (True, False):
        assert RunConfig(manifest="m.csv", device="cpu", channels_last=value).resolved().channels_last is value
