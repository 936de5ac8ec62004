"""`cimtest compare --learned` on a user's own model: both learned tests are rows with their
price, the report shows their inputs before and after, and a model without a gradient in its
inputs is refused in one line (exit 2) with nothing written."""

import json
import sys

import pytest
from typer.testing import CliRunner
from usermodels import build

from cimtest.cli.main import app

runner = CliRunner()

FROZEN = '''
import torch
from torch import nn


class Frozen(nn.Module):
    """Clamps its inputs without a gradient, as some preprocessing does."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        with torch.no_grad():
            x = x.clamp(0, 1)
        return self.net(x)


def frozen():
    torch.manual_seed(0)
    return Frozen()
'''


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def users(tmp_path_factory):
    """The user models of tests/usermodels.py, plus `frozen`: the trained `mlp` behind a
    preprocessing step without a gradient."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("learned-users")
    try:
        built = build(root, module="learned_users")
        (root / "frozen_src.py").write_text(FROZEN)
        import frozen_src

        weights = {f"net.{k}": v for k, v in built["mlp"].module.state_dict().items()}
        frozen_src.frozen().load_state_dict(weights)  # the same names
        save_file(weights, root / "frozen.safetensors")
        yield built, root
    finally:
        sys.path.remove(str(root))


def test_learned_rows_carry_their_price_and_the_report_shows_their_inputs(users, tmp_path):
    built, _ = users
    branchy = built["branchy"]
    out = tmp_path / "run"
    compared = run("compare", *branchy.args, "--data", branchy.data, "--fault", "mult:eta=0.3",
                   "--chips", 16, "--eval-chips", 8, "--images", 16, "--steps", 3, "--k", 2,
                   "--btv-steps", 5, "--learned", "--learned-steps", 4, "--learned-batch", 4,
                   "-o", out, "--json")
    assert compared.exit_code == 0, compared.output
    rows = {r["method"]: r for r in json.loads(compared.stdout)}
    assert {"optimized", "learned"} <= set(rows)
    assert rows["optimized"]["needs"] == ["model", "real images", "chip accuracies"]
    assert rows["learned"]["needs"] == ["model", "chip labels"]
    for name in ("optimized", "learned"):
        row = rows[name]
        assert row["forward_passes"] == 2 and row["test_bytes"] == 2 * 3 * 16 * 16 * 4
        assert row["detector_bytes"] > 0 and row["fit_s"] > 0
    assert rows["optimized"]["accuracy_rmse"] >= 0 and rows["learned"]["accuracy_rmse"] is None
    assert rows["dataset-aware"]["accuracy_rmse"] >= 0 and rows["egis"]["accuracy_rmse"] is None
    doc = json.loads((out / "comparison.json").read_text())
    for name in ("optimized", "learned"):  # the step the RUN folder records, also in the rows
        assert doc["methods"][name]["steps"] == doc["setup"]["params"][name]["batch"] == 4
        assert rows[name]["kept_step"] == doc["methods"][name]["best_step"]
        assert rows[name]["kept_step"] in (0, 4)  # the start or the last step (checked every 20)
    assert rows["dataset-aware"]["kept_step"] is None
    from safetensors.torch import load_file

    tensors = load_file(str(out / "tensors.safetensors"))
    for name in ("optimized", "learned"):
        assert tensors[f"{name}.start"].shape == tensors[f"{name}.inputs"].shape == (2, 3, 16, 16)
    assert doc["methods"]["learned"]["init"] == "synthetic"
    assert doc["methods"]["optimized"]["readout"] == "regressor"
    page = tmp_path / "report.html"
    reported = run("report", out, "-o", page)
    assert reported.exit_code == 0, reported.output
    text = page.read_text()
    section = text[text.index('<section id="learned-inputs">'):]
    section = section[: section.index("</section>")]
    assert section.count("data:image/png;base64,") == 2
    assert "<h3>optimized</h3>" in section and "<h3>learned</h3>" in section


def test_a_model_without_an_input_gradient_is_refused_in_one_line(users, tmp_path):
    built, root = users
    out = tmp_path / "run"
    refused = run("compare", "frozen_src:frozen", "--weights", root / "frozen.safetensors",
                  "--data", built["mlp"].data, "--fault", "mult:eta=1", "--chips", 16,
                  "--eval-chips", 8, "--k", 2, "--btv-steps", 5, "--learned", "-o", out)
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert refused.exit_code == 2, refused.output
    assert len(lines) == 1 and lines[0].startswith("cimtest: error: "), refused.stderr
    assert "not differentiable in its inputs" in lines[0]
    assert not out.exists() and not list(tmp_path.iterdir())
