"""One source for option values and stage names (engine/contract/choices.py): the CLI, the capture, the progress
protocol, the add-on's panel and runner and the headless scripts all read it."""

import ast
import io
from pathlib import Path

import pytest

from engine.contract import choices as C

ROOT = Path(__file__).resolve().parents[1]


def test_choices_is_a_pure_python_leaf():
    tree = ast.parse((ROOT / "engine" / "contract" / "choices.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert C.sides_of("both") == C.SIDES and len(set(C.SIDES)) == 2
    assert all(C.sides_of(side) == (side,) for side in C.SIDES) and set(C.SIDES) < set(C.HANDS)
    for values, default in ((C.HANDS, C.DEFAULT_HANDS), (C.QUALITIES, C.DEFAULT_QUALITY), (C.DEVICES, C.DEFAULT_DEVICE),
                            (C.ROOT_MOTIONS, C.DEFAULT_ROOT_MOTION), (C.PRIOR_TERMS, C.DEFAULT_PRIOR_TERM),
                            (C.KEYPOINT_SOURCES, C.DEFAULT_KEYPOINT_SOURCE), (C.FIT_STAGES, C.DEFAULT_FIT_STAGES)):
        assert default in values


def test_cli_and_capture_use_the_choices():
    from engine.capture import QUALITY_PRESETS, CaptureOptions
    from engine.commands.cli import capture_parser

    actions = {a.dest: a for a in capture_parser()._actions}
    expected = {"hands": (C.HANDS, C.DEFAULT_HANDS), "quality": (C.QUALITIES, C.DEFAULT_QUALITY),
                "root_motion": (C.ROOT_MOTIONS, C.DEFAULT_ROOT_MOTION), "prior_term": (C.PRIOR_TERMS, C.DEFAULT_PRIOR_TERM),
                "keypoint_source": (C.KEYPOINT_SOURCES, C.DEFAULT_KEYPOINT_SOURCE),
                "stages": (C.FIT_STAGES, C.DEFAULT_FIT_STAGES), "progress": (C.PROGRESS_MODES, None)}
    options = CaptureOptions()
    for dest, (values, default) in expected.items():
        assert tuple(actions[dest].choices) == values and actions[dest].default == default, dest
        if default is not None:
            assert getattr(options, dest) == default, dest
    assert actions["device"].default == options.device == C.DEFAULT_DEVICE
    assert tuple(QUALITY_PRESETS) == C.QUALITIES


def test_the_fit_knows_the_same_root_motions():
    from engine.fit.stages import ROOT_MOTIONS, FitOptions

    assert sorted(ROOT_MOTIONS) == sorted(C.ROOT_MOTIONS)
    assert FitOptions().root_motion == C.DEFAULT_ROOT_MOTION and FitOptions().prior_term == C.DEFAULT_PRIOR_TERM


def test_progress_stages_are_the_choices_and_unknown_ones_are_refused():
    from engine.contract import progress

    assert progress.STAGES[:len(C.CAPTURE_STAGES)] == C.CAPTURE_STAGES
    rep = progress.Reporter("jsonl", stream=io.StringIO())
    rep.stage("fit2", "Stage II", total=1)
    with pytest.raises(ValueError, match="unknown progress stage 'fit3'"):
        rep.stage("fit3", "Stage III")


def test_the_addon_panel_and_runner_use_the_choices():
    pytest.importorskip("bpy")
    from hmp_addon import properties, runner

    fields = properties.HMP_CaptureSettings.__annotations__
    for name, values, default in (("hands", C.HANDS, C.DEFAULT_HANDS), ("quality", C.QUALITIES, C.DEFAULT_QUALITY),
                                  ("root_motion", C.ROOT_MOTIONS, C.DEFAULT_ROOT_MOTION)):
        items = fields[name].keywords["items"]
        assert tuple(k for k, _, _ in items) == values and fields[name].keywords["default"] == default, name
        assert all(label and text for _, label, text in items)
    assert tuple(runner.STAGE_WEIGHTS) == C.CAPTURE_STAGES and abs(sum(runner.STAGE_WEIGHTS.values()) - 1.0) < 1e-9


def test_the_addon_device_lists_are_the_choices():
    pytest.importorskip("bpy")
    from hmp_addon import engine_link, engine_setup, preferences, properties

    assert engine_link.choices is C
    assert tuple(k for k, _, _ in preferences.DEVICE_ITEMS) == C.DEVICES
    assert all(label and text for _, label, text in preferences.DEVICE_ITEMS)
    device = properties.HMP_CaptureSettings.__annotations__["device"].keywords
    assert [k for k, _, _ in device["items"]] == ["PREFS", *C.DEVICES] and device["default"] == "PREFS"
    prefs = preferences.HMP_AddonPreferences.__annotations__
    assert prefs["default_device"].keywords["default"] == C.DEFAULT_DEVICE
    # the torch builds Set Up Engine offers: auto, then each one it has an index for
    assert tuple(k for k, _, _ in prefs["setup_torch"].keywords["items"]) == engine_setup.TORCH_VARIANTS
    assert engine_setup.TORCH_VARIANTS == ("auto", *engine_setup.TORCH_INDEX)


def test_the_headless_script_and_the_jobs_use_the_choices():
    pytest.importorskip("bpy")
    import inspect

    from hmp_addon import headless, jobs, runner

    parser_args = headless.parse_args(["--video", "v.mp4", "--save", "o.blend"])
    assert (parser_args.hands, parser_args.quality, parser_args.root_motion, parser_args.device) == (
        C.DEFAULT_HANDS, C.DEFAULT_QUALITY, C.DEFAULT_ROOT_MOTION, None)
    for flag, values in (("--hands", C.HANDS), ("--device", C.DEVICES), ("--quality", C.QUALITIES),
                         ("--root-motion", C.ROOT_MOTIONS)):
        for value in values:
            headless.parse_args(["--video", "v.mp4", "--save", "o.blend", flag, value])
        with pytest.raises(SystemExit):
            headless.parse_args(["--video", "v.mp4", "--save", "o.blend", flag, "nonsense"])
    for fn in (jobs.CaptureParams.__init__, runner.capture_argv):
        defaults = {k: p.default for k, p in inspect.signature(fn).parameters.items()}
        assert (defaults["hands"], defaults["device"], defaults["quality"]) == (
            C.DEFAULT_HANDS, C.DEFAULT_DEVICE, C.DEFAULT_QUALITY)
    assert jobs.CaptureParams("v.mp4", hands="both").sides == C.SIDES
    assert jobs.CaptureParams("v.mp4", hands="left").sides == ("left",)
    assert not hasattr(jobs, "hand_sides")  # one "both" -> sides rule: engine.contract.choices.sides_of


def test_the_addon_hand_pickers_are_the_sides():
    pytest.importorskip("bpy")
    from hmp_addon import operators, retarget_ui

    hands = operators.HMP_OT_import_result.__annotations__["hands"].keywords["items"]
    assert [k for k, _, _ in hands] == ["ALL", *C.SIDES] and all(label for _, label, _ in hands)
    side = retarget_ui.HMP_RetargetSettings.__annotations__["side"].keywords
    assert tuple(k for k, _, _ in side["items"]) == C.SIDES and side["default"] in C.SIDES
    assert all(label for _, label, _ in side["items"])
