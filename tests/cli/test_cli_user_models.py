"""A user's own models and data from the command line, with no wrapper: data used as given,
inputs of rank 1, 2 and 3 inferred, every command end to end, and bad inputs refused in one
line (exit 2) with nothing written."""

import json
import sys

import numpy as np
import pytest
from clitools import error_line
from typer.testing import CliRunner
from usermodels import SHAPES, build

from cimtest.cli.main import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def users(tmp_path_factory):
    """The three user models (seq: Conv1d on (1, 64); branchy: Conv2d on (3, 16, 16); mlp:
    Linear on (20,)), trained on inputs in [0, 1], with their .npz test and real data."""
    root = tmp_path_factory.mktemp("users")
    try:
        yield build(root)
    finally:
        sys.path.remove(str(root))


# ---- data as given --------------------------------------------------------------------------


def test_user_data_is_used_as_stored_and_info_prints_accuracy_first(users):
    model = users["branchy"]
    result = run("info", *model.args, "--data", model.data, "--input-shape", "3,16,16")
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"accuracy on {model.data.name}: float 100.00 %"), first
    assert "near chance" not in result.stderr
    report = json.loads(run("info", *model.args, "--data", model.data, "--input-shape",
                            "3,16,16", "--json").stdout)
    assert list(report)[:3] == ["float_accuracy", "ideal_accuracy", "data"]


def test_a_wrong_normalisation_warns_in_one_line(users):
    model = users["branchy"]
    for command in (("info",), ("campaign", "--fault", "mult:eta=0.01", "--chips", 2)):
        result = run(*command, *model.args, "--data", model.data, "--input-shape", "3,16,16",
                     "--normalise", "10,1")
        assert result.exit_code == 0, result.output
        warnings = [line for line in result.stderr.splitlines() if "near chance" in line]
        assert len(warnings) == 1, result.stderr
        assert "is the data scaled as the model expects?" in warnings[0]


def test_normalisation_stored_in_the_npz_is_applied(users, tmp_path):
    model = users["branchy"]
    with np.load(model.data) as archive:
        x, y = archive["x"], archive["y"]
    mean, std = np.array([0.2, 0.3, 0.4]), np.array([2.0, 4.0, 0.5])
    np.savez(tmp_path / "scaled.npz", x=x * std[:, None, None] + mean[:, None, None], y=y,
             mean=mean, std=std)
    result = run("info", *model.args, "--data", tmp_path / "scaled.npz", "--input-shape",
                 "3,16,16", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["float_accuracy"] == 100.0


@pytest.mark.parametrize("value", ["1,2,3", "0.5,0", "a,b", "0.5,nan", ""])
def test_bad_normalise_is_refused_before_the_model_loads(users, value):
    model = users["branchy"]
    line = error_line(run("info", *model.args, "--data", model.data, "--normalise", value))
    assert "--normalise" in line


# ---- inputs of any rank ---------------------------------------------------------------------

LEVELS = {"seq": "mult:eta=2", "branchy": "mult:eta=0.3", "mlp": "mult:eta=1"}
"""A level per model at which chips spread over pass and fail."""


def test_input_shape_is_inferred_from_the_data_or_a_first_linear(users):
    from usermodels import SHAPES

    for name, model in users.items():
        result = run("info", *model.args, "--data", model.data, "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert tuple(report["input_shape"]) == SHAPES[name]
        assert report["float_accuracy"] == 100.0
    mlp = json.loads(run("info", *users["mlp"].args, "--json").stdout)  # Linear in_features
    assert mlp["input_shape"] == [20] and mlp["float_accuracy"] is None
    line = error_line(run("info", *users["seq"].args))  # a Conv1d needs L: from the data
    assert "--data or --input-shape C,L" in line
    assert json.loads(run("info", *users["seq"].args, "--input-shape", "1,64",
                          "--json").stdout)["input_shape"] == [1, 64]


@pytest.mark.parametrize("name", ["seq", "branchy", "mlp"])
def test_every_command_end_to_end(users, tmp_path, name):
    """campaign, calibrate, btv fit / evaluate and compare (+ report) on each rank."""
    model = users[name]
    data = ("--data", model.data)
    campaign = run("campaign", *model.args, *data, "--fault", LEVELS[name], "--chips", 8,
                   "--json")
    assert campaign.exit_code == 0, campaign.output
    assert json.loads(campaign.stdout)["accuracy_mean"] < 100
    calibrated = run("calibrate", *model.args, *data, "--fault", "mult", "--drop", 5, "--chips",
                     4, "--iterations", 3, "--json")
    assert calibrated.exit_code == 0, calibrated.output
    assert json.loads(calibrated.stdout)[0]["level"] > 0
    btv = tmp_path / "btv.safetensors"
    fit = run("btv", "fit", *model.args, *data, "-o", btv, "--steps", 5, "--json")
    assert fit.exit_code == 0, fit.output
    evaluate = run("btv", "evaluate", btv, "--model", *model.args, *data, "--fault",
                   LEVELS[name], "--chips", 8, "--test-images", 60, "--fresh", 10, "--json")
    assert evaluate.exit_code == 0, evaluate.output
    assert json.loads(evaluate.stdout)[0]["chips"] == 8
    out = tmp_path / "run"
    compare = run("compare", *model.args, *data, "--real", model.real, "--fault", LEVELS[name],
                  "--chips", 16, "--eval-chips", 8, "--images", 16, "--steps", 3, "--btv-steps",
                  5, "--k", 2, "-o", out, "--json")
    assert compare.exit_code == 0, compare.output
    methods = {row["method"] for row in json.loads(compare.stdout)}
    assert {"egis", "hybrid", "random-synthetic+detector"} <= methods  # at every rank
    assert "left out" not in compare.stderr
    report = run("report", out, "-o", tmp_path / "report.html")
    assert report.exit_code == 0, report.output


@pytest.mark.parametrize("name", ["seq", "branchy", "mlp"])
def test_egis_fit_and_evaluate_on_every_rank(users, tmp_path, name):
    """egis fit makes synthetic inputs of the model's own shape, (1, 64), (3, 16, 16) or
    (20,); images.png draws them (curves for sequences and features); evaluate runs."""
    from cimtest.methods.egis import EntropyImageTest

    model = users[name]
    out = tmp_path / "egis"
    fitted = run("egis", "fit", *model.args, "--data", model.data, "--fault", LEVELS[name],
                 "-o", out, "--chips", 16, "--images", 16, "--steps", 3, "--batch", 8,
                 "--splits", 1, "--rho", 0.5, "--k", 2, "--json")
    assert fitted.exit_code == 0, fitted.output
    member = out / json.loads(fitted.stdout)["members"][0]["dir"]
    test = EntropyImageTest.load(member / "test.safetensors")
    assert tuple(test.images_.shape) == (2, *SHAPES[name])
    assert (member / "images.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    evaluated = run("egis", "evaluate", out, "--model", *model.args, "--data", model.data,
                    "--chips", 8, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)[0]["chips"] == 8


# ---- bad input: one line, exit 2, nothing written -------------------------------------------


def test_bad_shapes_ranks_labels_and_data(users, tmp_path):
    """Each case is refused by campaign (which reads the data) and, where the model or the
    shape is at fault, by btv fit too (which reads none)."""
    seq, branchy = users["seq"], users["branchy"]
    x = np.load(seq.data)["x"]
    np.savez(tmp_path / "labels.npz", x=x, y=np.full(len(x), 7))
    np.savez(tmp_path / "text.npz", x=np.array("not an array"), y=np.zeros(1, int))
    np.savez(tmp_path / "objects.npz", x=np.array([{}, {}], dtype=object), y=np.zeros(2, int))
    cases = [  # (arguments, expected words, also refused by btv fit)
        ((*branchy.args, "--data", branchy.data, "--input-shape", "3,8,8"), "(3, 8, 8)", False),
        ((*seq.args, "--input-shape", "64"), "takes (C, L) inputs", True),
        ((*branchy.args, "--input-shape", "3,16"), "takes (C, H, W) inputs", True),
        ((*seq.args, "--input-shape", "1,2,3,4"), "1 to 3 integers", True),
        ((*seq.args, "--data", tmp_path / "labels.npz"), "num_classes=4", False),
        ((*seq.args, "--data", tmp_path / "text.npz"), "text.npz", True),
        ((*seq.args, "--data", tmp_path / "objects.npz", "--input-shape", "1,64"),
         "objects.npz", False),
    ]
    chips, out = tmp_path / "chips.csv", tmp_path / "btv.safetensors"
    for args, wanted, model_at_fault in cases:
        commands = [("campaign", "--fault", "mult:eta=0.1", "--chips", 2, "-o", chips)]
        if model_at_fault:
            commands.append(("btv", "fit", "-o", out, "--steps", 2))
        for command in commands:
            line = error_line(run(*command, *args))
            assert wanted in line, (command, args, line)
            assert not out.exists() and not chips.exists()


# ---- no leak: the baselines' real images are never the accuracy images ---------------------


def test_real_images_are_held_out_of_the_accuracy_data(users, tmp_path):
    from cimtest.data import load_data
    from cimtest.data.dataset import hold_out

    mlp = users["mlp"]
    out = tmp_path / "run"
    small = ("--fault", LEVELS["mlp"], "--chips", 16, "--eval-chips", 8, "--images", 16,
             "--steps", 3, "--btv-steps", 5, "--k", 2)
    result = run("compare", *mlp.args, "--data", mlp.data, *small, "-o", out)
    assert result.exit_code == 0, result.output
    assert "30 of its 120 images held out (seeded split, share 0.25, seed 0)" in result.stdout
    setup = json.loads((out / "comparison.json").read_text())["setup"]
    assert setup["real_split"] == {"share": 0.25, "seed": 0, "real_images": 30,
                                   "data_images": 90, "of": 120}
    assert setup["data_images"] == 90 and setup["real_images"] == 30
    page = tmp_path / "report.html"
    assert run("report", out, "-o", page).exit_code == 0
    assert "held out (seeded split, share 0.25, seed 0)" in page.read_text()
    data = load_data(mlp.data, (20,))
    rest, pool = hold_out(data, 0.25, seed=0)
    rows = {tuple(r) for r in rest.x.tolist()}
    assert len(pool) == 30 and not any(tuple(r) in rows for r in pool.x.tolist())
    same = run("compare", *mlp.args, "--data", mlp.data, "--real", mlp.data, *small)
    assert "--real is the --data file" in error_line(same)


# ---- calibrate inside compare and egis fit --------------------------------------------------


def test_compare_and_egis_fit_calibrate_the_level_or_report_its_drop(users, tmp_path):
    branchy, mlp = users["branchy"], users["mlp"]
    small = ("--chips", 16, "--images", 16, "--steps", 3, "--k", 2)
    fitted = run("egis", "fit", *branchy.args, "--data", branchy.data, "--fault",
                 "egis-typical", "--drop", 25, "--calibration-chips", 8, *small, "--batch", 8,
                 "--splits", 1, "--rho", 0.5, "-o", tmp_path / "egis", "--json")
    assert fitted.exit_code == 0, fitted.output
    doc = json.loads(fitted.stdout)
    level = doc["calibration"]["level"]
    assert doc["fault"] == f"rram:sigma={level:.4g},sys=0.25,cor=0.25,lambda=0.001"
    assert doc["calibration"]["drop"] == 25 and doc["mean_drop"] > 0
    assert "calibrated rram:sigma=" in fitted.stderr
    out = tmp_path / "run"
    compared = run("compare", *mlp.args, "--data", mlp.data, "--fault", "mult", "--drop", 30,
                   "--calibration-chips", 8, *small, "--eval-chips", 8, "--btv-steps", 5,
                   "-o", out)
    assert compared.exit_code == 0, compared.output
    setup = json.loads((out / "comparison.json").read_text())["setup"]
    assert setup["fault"].startswith("mult:eta=") and setup["calibration"]["drop"] == 30
    assert f"calibrated {setup['fault']}: mean drop" in compared.stdout
    given = run("compare", *mlp.args, "--data", mlp.data, "--fault", LEVELS["mlp"], *small,
                "--eval-chips", 8, "--btv-steps", 5)
    assert given.exit_code == 0, given.output
    assert given.stdout.startswith(f"{LEVELS['mlp']}: mean accuracy drop ")
    assert "over 16 chips (ideal chip 100.00 %)" in given.stdout.splitlines()[0]


def test_compare_calibrates_the_level_by_secant_search(users, tmp_path, monkeypatch):
    """--search secant inside compare: the engine's calibration runs the secant search, and
    the level it finds meets its target."""
    from cimtest.engine import calibrate as module

    searches = []

    def recording(*args, search="bisect", **kwargs):
        searches.append(search)
        return calibrate(*args, search=search, **kwargs)

    calibrate = module.calibrate
    monkeypatch.setattr(module, "calibrate", recording)
    mlp = users["mlp"]
    out = tmp_path / "run"
    compared = run("compare", *mlp.args, "--data", mlp.data, "--fault", "mult", "--drop", 30,
                   "--calibration-chips", 8, "--search", "secant", "--chips", 16, "--k", 2,
                   "--images", 16, "--steps", 3, "--eval-chips", 8, "--btv-steps", 5, "-o", out)
    assert compared.exit_code == 0, compared.output
    assert searches == ["secant"]
    assert json.loads((out / "comparison.json").read_text())["setup"]["calibration"][
        "meets_target"]


@pytest.mark.parametrize("fault, drop, wanted", [
    ("egis-typical:sigma=0.2", "2", "give the fault without it"),
    ("mult+bitflip", "2", "one fault kind"),
    ("mult", "-1", "positive"),
    ("mult:eat=1", "2", "eat"),
])
def test_bad_drop_is_refused_before_the_model_loads(fault, drop, wanted):
    for command in (("compare",), ("egis", "fit", "-o", "/tmp/never-written")):
        line = error_line(run(*command, "no_such_module:f", "--fault", fault, "--drop", drop))
        assert wanted in line


# ---- tests remember their model -------------------------------------------------------------


def test_tests_remember_their_model(users, tmp_path):
    """btv evaluate / apply and egis evaluate / apply find the model a test names: a .pt2
    archive (or zoo name) again without --model; a module:factory is never imported because a
    file names it, so --model is needed then, as it is when the model cannot be found again."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from cimtest.artifacts import load_artifact

    mlp, branchy = users["mlp"], users["branchy"]
    evaluate = ("--data", mlp.data, "--fault", LEVELS["mlp"], "--chips", 8, "--test-images",
                60, "--fresh", 10, "--json")
    btv = tmp_path / "btv.safetensors"
    assert run("btv", "fit", *mlp.args, "-o", btv, "--steps", 5).exit_code == 0
    named = load_artifact(btv).model
    assert named == {"name": mlp.spec, "spec": mlp.spec, "weights": str(mlp.weights),
                     "input_shape": [20]}
    line = error_line(run("btv", "evaluate", btv, *evaluate))
    assert mlp.spec in line and "not imported" in line and "give --model" in line
    chip = tmp_path / "chip.safetensors"
    save_file({k: v * 1.5 for k, v in load_file(mlp.weights).items()}, chip)
    assert "not imported" in error_line(run("btv", "apply", btv, "--weights", chip))
    given = run("btv", "evaluate", btv, "--model", *mlp.args, *evaluate)
    assert given.exit_code == 0, given.output
    verdict = run("btv", "apply", btv, "--model", mlp.spec, "--weights", chip, "--reference",
                  mlp.spec, "--reference-weights", mlp.weights, "--json")
    assert verdict.exit_code in (0, 1), verdict.output
    assert json.loads(verdict.stdout)["rows"][0]["verdict"] in ("pass", "uncertain")

    archive = tmp_path / "mlp.pt2"
    torch.export.save(torch.export.export(mlp.module.eval(), (torch.zeros(2, 20),),
                                          dynamic_shapes=({0: torch.export.Dim("batch")},)),
                      archive)
    exported = tmp_path / "exported.safetensors"
    assert run("btv", "fit", archive, "-o", exported, "--steps", 5).exit_code == 0
    result = run("btv", "evaluate", exported, *evaluate)
    assert result.exit_code == 0, result.output
    assert f"model {archive.resolve()} (named by {exported})" in result.stderr
    verdict = run("btv", "apply", exported, "--weights", chip, "--json")  # the archive's graph
    assert verdict.exit_code == 1, verdict.output  # with the chip's weights: 1.5x is uncertain
    moved = tmp_path / "moved.pt2"
    shutil.move(archive, moved)
    line = error_line(run("btv", "evaluate", exported, *evaluate))
    assert "give --model" in line and "mlp.pt2" in line
    given = run("btv", "evaluate", exported, "--model", moved, *evaluate)
    assert given.exit_code == 0, given.output

    egis = tmp_path / "egis"
    small = ("--chips", 16, "--images", 16, "--steps", 3, "--batch", 8, "--splits", 1,
             "--rho", 0.5, "--k", 2)
    fit = run("egis", "fit", *branchy.args, "--data", branchy.data, "--fault",
              LEVELS["branchy"], "-o", egis, *small)
    assert fit.exit_code == 0, fit.output
    line = error_line(run("egis", "evaluate", egis, "--data", branchy.data, "--chips", 8))
    assert branchy.spec in line and "not imported" in line
    result = run("egis", "evaluate", egis, "--model", *branchy.args, "--data", branchy.data,
                 "--chips", 8, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["chips"] == 8
    chip = tmp_path / "chip2.safetensors"
    save_file({k: v * 1.2 if v.is_floating_point() else v
               for k, v in load_file(branchy.weights).items()}, chip)
    verdict = run("egis", "apply", egis, "--model", branchy.spec, "--weights", chip,
                  "--reference", branchy.spec, "--reference-weights", branchy.weights, "--json")
    assert verdict.exit_code in (0, 1), verdict.output
    assert json.loads(verdict.stdout)["rows"][0]["verdict"] in ("pass", "fail")
