"""`capture`: detect cameras, show settings, shoot a pair, run a session at the tripod."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import click

from curate.common.clitools import CONTEXT, reports_errors, stderr, stdout
from curate.common.errors import SidkitError
from curate.exposure import RATIO_MAX, RATIO_MIN, format_exposure, parse_shutter, reachable_pairs

from .backend import Camera
from .pair import (PairRequest, check_scene_name, long_exposure, pair_title, plan_dict, plan_pair, plan_table,
                   result_dict, settings_line, shoot_pair, summary_table)
from .session import check_lines, next_scene_name, quick_check, run_session, session_table
from .tables import titled_table


def open_camera(camera: str, profile: str, sim_size: str | None) -> Camera:
    """'sim' -> simulated sensor (``sim_size`` None: the profile's own size), 'auto' -> first
    libgphoto2 camera, anything else -> that port."""
    if camera == "sim":
        from .sensor import get_profile
        from .simcamera import SimCamera
        body = get_profile(profile)
        width, height = parse_size(sim_size, "--sim-size") if sim_size else (body.width, body.height)
        return SimCamera(profile, width=width, height=height)
    from .gphoto import GPhotoCamera
    return GPhotoCamera(None if camera == "auto" else camera)


def parse_size(text: str, option: str) -> tuple[int, int]:
    """'512x384' -> (512, 384): even sides of at least 16 pixels."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SidkitError(f"{option} {text!r}: write WIDTHxHEIGHT, e.g. 512x384") from None
    if min(width, height) < 16 or width % 2 or height % 2:
        raise SidkitError(f"{option} {text}: sides must be even and at least 16 pixels, e.g. 512x384")
    return width, height


def exposure_option(value: str | None) -> Fraction | None:
    if value is None:
        return None
    try:
        seconds = parse_shutter(value)
    except ValueError as exc:
        raise SidkitError(f"{exc}; write e.g. 10, 0.3, 1/25 or 60s") from None
    if seconds is None:
        raise SidkitError(f"{value!r}: give the exposure time in seconds; bulb is chosen for you above 30 s")
    return seconds


camera_options = [
    click.option("--camera", default="auto", show_default=True,
                 help="auto (first libgphoto2 camera), sim (simulated sensor) or a port from `capture detect`."),
    click.option("--profile", default="sim-dslr14", show_default=True, help="Sensor profile for --camera sim."),
    click.option("--sim-size", default=None,
                 help="Image size WIDTHxHEIGHT for --camera sim  [default: the profile's, 512x384; sim-xtrans14 768x516]."),
]
shoot_options = [
    click.option("--ratio", type=float, default=250, show_default=True,
                 help=f"Long/short exposure ratio, {RATIO_MIN}-{RATIO_MAX}; the nearest the camera offers is used."),
    click.option("--long", "long_", help="Long exposure in seconds (e.g. 10; above 30 uses bulb where offered)."),
    click.option("--short", help="Short exposure instead of --long (e.g. 1/25)."),
    click.option("--shorts", type=int, default=3, show_default=True, help="Short exposures per scene."),
    click.option("--iso", type=float, help="ISO for both exposures (default: the camera's, if not Auto)."),
    click.option("--fnumber", type=float, help="Aperture for both exposures (default: the camera's)."),
    click.option("--image-format", "image_format", type=click.Choice(["raw", "raw+jpeg"]), default="raw",
                 show_default=True, help="Image format to set on the camera."),
    click.option("--target", type=click.Choice(["ram", "card"]), default="ram", show_default=True,
                 help="Capture target, set on every run (libgphoto2 remembers the last one)."),
    click.option("--repeat-long", is_flag=True, help="Shoot the long again after the shorts."),
    click.option("--allow-any-ratio", is_flag=True, help="Accept a ratio outside 100-300 (recorded in the log)."),
    click.option("--dataset", type=click.Path(file_okay=False, path_type=Path), required=True,
                 help="Dataset folder: files go to DATASET/<scene>/, the log to DATASET/captures.jsonl."),
]


FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
                      help="table for people; json prints one JSON document on stdout for scripts.")


def print_json(data) -> None:
    click.echo(json.dumps(data, indent=2))


def add_options(options):
    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return func
    return decorate


def request_from(scene, environment, notes, ratio, long_, short, shorts, iso, fnumber, image_format, target,
                 repeat_long, allow_any_ratio) -> PairRequest:
    return PairRequest(scene=scene, environment=environment, ratio=ratio, long=exposure_option(long_),
                       short=exposure_option(short), shorts=shorts, iso=iso, fnumber=fnumber,
                       image_format=image_format, capture_target=target, repeat_long=repeat_long,
                       allow_any_ratio=allow_any_ratio, notes=notes or "")


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="sidkit", message="%(prog)s (sidkit) %(version)s")
def main():
    """Tether a camera (libgphoto2) or a simulated sensor and shoot short/long exposure pairs."""


@main.command()
@FORMAT
@reports_errors
def detect(fmt):
    """List the cameras libgphoto2 sees (model and port) and the simulated profiles.

    \b
    capture detect
    capture detect --format json
    """
    from . import sensor
    from .gphoto import detect as detect_cameras

    cameras = [{"model": model, "camera": port, "profile": None} for model, port in detect_cameras()]
    if not cameras:
        stderr.print("no camera found by libgphoto2: connect it by USB, switch it on and set USB mode to PTP/PC "
                     "remote; the simulated bodies below need none (--camera sim), and docs/capture.md, 'Without "
                     "a camera', runs the real-camera path on libgphoto2's virtual camera", highlight=False)
    cameras += [{"model": f"simulated {name}", "camera": "sim", "profile": name} for name in sensor.PROFILES]
    if fmt == "json":
        return print_json(cameras)
    table = titled_table("Cameras", "model", "port (--camera)")
    for c in cameras:
        table.add_row(c["model"], c["camera"] + (f" --profile {c['profile']}" if c["profile"] else ""))
    stdout.print(table)


@main.command()
@add_options(camera_options)
@click.option("--long", "long_", help="Long exposure to list reachable ratios for  [default: the body's speed nearest 10 s].")
@FORMAT
@reports_errors
def settings(camera, profile, sim_size, long_, fmt):
    """Shutter list, ISO, aperture, image format, capture target, and the ratios reachable at --long.

    \b
    capture settings --long 10
    capture settings --camera sim --profile sim-phone10
    capture settings --camera sim --format json
    """
    with open_camera(camera, profile, sim_size) as cam:
        current = cam.read_settings()
    long_s = long_exposure(current.shutter.choices, exposure_option(long_))
    pairs = reachable_pairs(current.shutter.choices, long_s, bulb=current.bulb)
    if fmt == "json":
        return print_json({
            "camera": current.camera, "bulb": current.bulb, "long_s": float(long_s),
            "settings": {name: None if (c := current.get(name)) is None else {"current": c.current, "choices": c.choices}
                         for name in ("shutter", "iso", "fnumber", "image_format", "capture_target")},
            "pairs": [{"long": p.long_label, "short": p.short_label, "nominal_ratio": round(p.nominal_ratio, 4),
                       "true_ratio": round(p.true_ratio, 4)} for p in pairs]})
    table = titled_table(current.camera, "setting", "current")
    table.add_column("choices", overflow="fold")
    for name in ("shutter", "iso", "fnumber", "image_format", "capture_target"):
        choice = current.get(name)
        if choice is None:
            table.add_row(name, "(not offered)", "")
        else:
            table.add_row(name, str(choice.current), ", ".join(choice.choices))
    table.add_row("bulb", "offered" if current.bulb else "no", "")
    stdout.print(table)
    ratios = titled_table(f"Ratios {RATIO_MIN}-{RATIO_MAX} reachable at {format_exposure(long_s)} s",
                          "short", "nominal ratio", "true ratio")
    for p in pairs:
        ratios.add_row(p.short_label, f"{p.nominal_ratio:g}", f"{p.true_ratio:.4g}")
    stdout.print(ratios if pairs else f"no short on this camera's list gives {RATIO_MIN}-{RATIO_MAX}x "
                                      f"at {format_exposure(long_s)} s")


@main.command()
@click.option("--scene", required=True, help="Scene name: letters, digits and '-'.")
@click.option("--environment", type=click.Choice(["indoor", "outdoor"]), required=True)
@click.option("--notes", default="", help="Free text stored with every shot.")
@add_options(shoot_options)
@add_options(camera_options)
@click.option("--dry-run", is_flag=True, help="Print the plan; set nothing, shoot nothing.")
@click.option("--check/--no-check", default=True, show_default=True, help="Quick pixel check after the pair.")
@FORMAT
@reports_errors
def pair(scene, environment, notes, ratio, long_, short, shorts, iso, fnumber, image_format, target,
         repeat_long, allow_any_ratio, dataset, camera, profile, sim_size, dry_run, check, fmt):
    """Shoot one scene: the long reference, then --shorts short exposures at --ratio.

    The pair is chosen from the camera's own shutter list; a ratio outside 100-300 is refused with
    the ratios the camera can reach. ISO, aperture, format and target are set and read back first.

    \b
    capture pair --ratio 250 --long 10 --scene kitchen --environment indoor --dataset datasets/canon90d
    capture pair --ratio 100 --short 1/10 --iso 800 --scene porch --environment outdoor --dataset d --dry-run
    capture pair --camera sim --scene demo --environment indoor --dataset datasets/sim --format json
    capture pair --camera sim --profile sim-xtrans14 --scene fuji --environment indoor --dataset datasets/fuji
    """
    request = request_from(scene, environment, notes, ratio, long_, short, shorts, iso, fnumber, image_format,
                           target, repeat_long, allow_any_ratio)
    check_scene_name(scene)                  # before the camera is opened or anything is created
    with open_camera(camera, profile, sim_size) as cam:
        plan = plan_pair(cam, request, dataset)
        if dry_run:
            if fmt == "json":
                return print_json(plan_dict(plan))
            stdout.print(plan_table(plan))
            return stdout.print(settings_line(plan), highlight=False)
        with stderr.status(f"shooting {pair_title(plan)}") as status:
            result = shoot_pair(cam, plan, dataset, on_shot=lambda r: status.update(
                f"shooting {plan.request.scene}: {r.shot.role} {r.shot.label} saved as {r.files[0].name}"))
    if check:
        result.checks = quick_check(result)
    if fmt == "json":
        return print_json(result_dict(result))
    stdout.print(settings_line(plan), highlight=False)
    stdout.print(summary_table(result))
    for line in check_lines(result.checks) if check else []:
        stdout.print(line, highlight=False)


@main.command()
@click.option("--prefix", default="scene", show_default=True, help="Default scene names are PREFIX-NNN.")
@click.option("--environment", type=click.Choice(["indoor", "outdoor"]), default="indoor", show_default=True,
              help="Default answer to the environment question.")
@add_options(shoot_options)
@add_options(camera_options)
@FORMAT
@reports_errors
def session(prefix, environment, ratio, long_, short, shorts, iso, fnumber, image_format, target, repeat_long,
            allow_any_ratio, dataset, camera, profile, sim_size, fmt):
    """Scene after scene: asks for the scene name, environment and notes, shoots, checks, goes on.

    Numbering resumes from the capture log after a crash; no file is ever overwritten. Type q to stop.

    \b
    capture session --dataset datasets/canon90d --ratio 250 --long 10 --iso 800
    capture session --dataset datasets/sim --camera sim --format json > session.json
    """
    template = request_from("", environment, "", ratio, long_, short, shorts, iso, fnumber, image_format, target,
                            repeat_long, allow_any_ratio)
    try:                                     # the default names must be usable: say so before the camera opens
        check_scene_name(next_scene_name(dataset, prefix))
    except SidkitError as exc:
        raise SidkitError(f"--prefix {prefix[:20]!r}{'...' if len(prefix) > 20 else ''}: {exc}") from None
    with open_camera(camera, profile, sim_size) as cam:
        results = run_session(cam, template, dataset, ask=lambda q, d: click.prompt(q, default=d, show_default=True,
                                                                                      err=True),
                              show=lambda m: stderr.print(m, highlight=False), prefix=prefix)
    if fmt == "json":
        return print_json([result_dict(r) for r in results])
    if results:
        stdout.print(session_table(results))
    stdout.print(f"{len(results)} scenes shot into {dataset}", highlight=False)


@main.command()
@click.argument("dataset", type=click.Path(file_okay=False, path_type=Path))
@click.option("--scenes", type=int, default=8, show_default=True, help="Scenes, the first half indoor.")
@click.option("--profiles", default="sim-dslr14,sim-mirrorless12", show_default=True,
              help="Comma-separated sensor profiles, used in turn (see `capture detect`).")
@click.option("--shorts", type=int, default=2, show_default=True, help="Short exposures per scene.")
@click.option("--long", "long_", default="10", show_default=True, help="Long exposure in seconds.")
@click.option("--ratio", type=float, default=250, show_default=True, help="Long/short exposure ratio.")
@click.option("--size", "size_", default=None,
              help="Raw size WIDTHxHEIGHT (multiples of 6 for sim-xtrans14)  [default: each profile's, 512x384; "
                   "sim-xtrans14 768x516].")
@click.option("--defects/--no-defects", default=True, show_default=True,
              help="Plant a ratio-20 scene, a moved camera and a changed light (planted_defects.json).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--allow-any-ratio", is_flag=True, help="Accept a --ratio outside 100-300 (a badly captured dataset).")
@FORMAT
@reports_errors
def simulate(dataset, scenes, profiles, shorts, long_, ratio, size_, defects, seed, allow_any_ratio, fmt):
    """Shoot a whole simulated dataset (DNG pairs + captures.jsonl) for demos, tests and dry runs.

    Every scene is shot by the simulated camera through the same code as `capture pair --camera sim`.

    \b
    capture simulate datasets/sim --scenes 8
    capture simulate datasets/sim-ratio10 --ratio 10 --allow-any-ratio --no-defects
    capture simulate datasets/sim --scenes 4 --size 128x96 --format json
    capture simulate datasets/fuji --profiles sim-xtrans14
    """
    from curate.common.clitools import progress_bar

    from .simulate import dataset_summary, scenes_table, simulate_dataset

    size = parse_size(size_, "--size") if size_ else None
    names = tuple(p.strip() for p in profiles.split(",") if p.strip())
    with progress_bar(scenes * (1 + shorts), "simulating") as advance:
        simulate_dataset(dataset, scenes=scenes, profiles=names, shorts_per_scene=shorts,
                         long_s=float(exposure_option(long_)), ratio=ratio, size=size,
                         defects=defects, seed=seed, allow_any_ratio=allow_any_ratio,
                         progress=lambda done, total: advance())
    summary = dataset_summary(dataset)
    if fmt == "json":
        return print_json(summary)
    stdout.print(scenes_table(summary))
    stderr.print(f"wrote {scenes} scenes to {dataset} (log: {dataset}/captures.jsonl)", highlight=False)


@main.command()
@click.option("--dataset", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the frames (DATASET/calibration-iso<ISO>/) and DATASET/captures.jsonl.")
@click.option("--isos", default=None, help="Comma-separated ISOs, or 'all' the camera offers  [default: 100,400,1600,6400].")
@click.option("--darks", type=int, default=10, show_default=True, help="Dark frames per ISO.")
@click.option("--flat-levels", type=int, default=6, show_default=True,
              help="Flat exposure levels per ISO (2%-70% of white), two frames each.")
@click.option("--dark-exposures", default=None,
              help="Short exposures for the darks, e.g. 1/10,1/25 [default: the shorts in DATASET's log, else 1/30].")
@click.option("--fnumber", type=float, help="Aperture to set (default: the camera's).")
@click.option("--notes", default="", help="Free text stored with every frame.")
@add_options(camera_options[:2])
@click.option("--sim-size", default=None,
              help="Image size for --camera sim  [default: twice the profile's size, 1024x768 for the Bayer bodies: "
                   "row noise needs large frames].")
@click.option("--yes", is_flag=True, help="Do not wait for Enter at the lens-cap and grey-card prompts.")
@click.option("--dry-run", is_flag=True, help="Print the plan; set nothing, shoot nothing.")
@reports_errors
def calibrate(dataset, isos, darks, flat_levels, dark_exposures, fnumber, notes, camera, profile, sim_size, yes,
              dry_run):
    """Shoot dark frames (lens cap on) and flat pairs (grey card) per ISO for `curate noise-profile`.

    Darks are shot at the short exposures you use and checked to be dark; flat times are chosen
    from a test shot's level on the camera's own shutter list, 2% to 70% of white. Every frame goes
    into DATASET/captures.jsonl with role dark or flat.

    \b
    capture calibrate --dataset cal --camera sim --profile sim-dslr14
    capture calibrate --dataset datasets/canon90d --isos 800,3200 --darks 6 --flat-levels 5
    capture calibrate --dataset cal --isos all --dry-run
    """
    from .calibrate import CalibrationRequest, log_short_exposures, plan_lines, resolve_isos, run_calibration

    exposures = ([exposure_option(v.strip()) for v in dark_exposures.split(",") if v.strip()] if dark_exposures
                 else log_short_exposures(dataset) or [Fraction(1, 30)])
    if camera == "sim" and sim_size is None:
        from .sensor import get_profile
        body = get_profile(profile)
        sim_size = f"{2 * body.width}x{2 * body.height}"
    with open_camera(camera, profile, sim_size) as cam:
        request = CalibrationRequest(isos=resolve_isos(cam, isos), darks=darks, flat_levels=flat_levels,
                                     dark_exposures=exposures, fnumber=fnumber, notes=notes)
        for line in plan_lines(cam, request, dataset):
            stdout.print(line, highlight=False)
        if dry_run:
            return
        confirm = ((lambda text: stderr.print(text.replace("Press Enter when ready", "(--yes)"), highlight=False))
                   if yes else (lambda text: click.prompt(text, default="", show_default=False, err=True)))
        result = run_calibration(cam, request, dataset, confirm=confirm,
                                 show=lambda m: stderr.print(m, highlight=False))
    stdout.print(f"{len(result.darks)} darks and {len(result.flats)} flats in {dataset} "
                 f"(log: {dataset}/captures.jsonl); next: curate noise-profile {dataset} -o profiles/NAME.toml",
                 highlight=False)
