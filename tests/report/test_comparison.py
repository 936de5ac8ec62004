"""compare(): every method on the same chips, each chip forwarded once; the RUN and the report."""

import dataclasses
from html.parser import HTMLParser

import numpy as np
import pytest
from conftest import factory_module

from cimtest.data import digits
from cimtest.engine import Population
from cimtest.exceptions import ArtifactError, ConfigError
from cimtest.loading import load_model
from cimtest.methods import TestMethod
from cimtest.metrics import mcnemar_exact, wilson_interval
from cimtest.report import compare, default_methods
from cimtest.report.html import SECTIONS, write_report
from cimtest.report.run import load_run, save_run

FAULT = "mult:eta=0.25"
VOID = {"meta", "img", "br", "hr", "link", "input"}


class TagChecker(HTMLParser):
    """Fails on a closing tag that does not match the open one; collects section ids."""

    def __init__(self):
        super().__init__()
        self.stack, self.sections, self.errors = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.sections.append(dict(attrs)["id"])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny digits classifier loaded as a `LoadedModel` (module:factory + weights)."""
    root = tmp_path_factory.mktemp("cmpmodel")
    with factory_module(root, "cmptiny"):
        yield load_model("cmptiny:tiny", weights=root / "tiny.safetensors"), digits(8)


def small_methods():
    return default_methods(k=2, seed=0, egis={"sid_size": 32, "steps": 5, "batch": 16,
                                              "rho": 0.7, "reward_estimators": 5,
                                              "detector_estimators": 10},
                           btv={"steps": 20})


@pytest.fixture(scope="module")
def counted(tiny_model):
    """A comparison with every draw of chips (`Population.forward_each`, which every forward
    goes through) recorded as (seed, population size, chips, inputs)."""
    loaded, data = tiny_model
    calls = []
    original = Population.forward_each

    def forward_each(self, chips, inputs, **kw):
        calls.append((self.seed, self.n, list(chips), sum(x.shape[0] for x in inputs)))
        return original(self, chips, inputs, **kw)

    Population.forward_each = forward_each
    try:
        result = compare(loaded, FAULT, data.test.subset(200), real=data.train,
                         methods=small_methods(), train_chips=40, eval_chips=24)
    finally:
        Population.forward_each = original
    return result, calls


def test_each_chip_is_forwarded_once_per_population(counted):
    result, calls = counted
    train = [c for c in calls if c[0] == 0 and c[1] == 40]
    evaluation = [c for c in calls if c[0] == 1]
    assert sorted(i for c in train for i in c[2]) == list(range(40))
    assert sorted(i for c in evaluation for i in c[2]) == list(range(24))
    assert {c[3] for c in train} == {result.forwards["train"]}
    assert {c[3] for c in evaluation} == {result.forwards["eval"]}
    # every other forward is an ideal chip (thresholds, labels), never a population of chips
    assert all(c[1] == 1 for c in calls if c not in train and c not in evaluation)
    # the evaluation bank holds the data and each test's inputs, shared rows once
    per_method = {r["method"]: r["forward_passes"] for r in result.rows}
    assert result.forwards["eval"] <= 200 + sum(per_method.values())
    assert per_method["hybrid"] == per_method["egis"] + per_method["btv"] == 3


def test_rows_hold_every_method_and_metric(counted):
    result, _ = counted
    names = [r["method"] for r in result.rows]
    assert names == list(small_methods())
    for row in result.rows:
        assert row["ta"] + row["te"] + row["yl"] == pytest.approx(100.0)
        assert row["te"] == pytest.approx(row["cte"] + row["bte"])
        assert 0 <= row["auc"] <= 1 and row["fit_s"] >= 0 and row["needs"][0] == "model"
        assert row["note"] == result.methods[row["method"]].describe().get("note")
    needs = {r["method"]: r["needs"] for r in result.rows}
    assert needs["btv"] == ["model"]
    assert "chip accuracies" in needs["dataset-aware"]
    # TA recomputed from the stored verdicts and accuracies
    failed = ~(result.eval_accuracy > result.cutoff_accuracy)
    for row in result.rows:
        flagged = result.flags[row["method"]]
        assert row["ta"] == pytest.approx(100 * np.mean(flagged == failed))


def test_rows_carry_ta_interval_and_paired_test_against_best(counted):
    result, _ = counted
    failed = ~(result.eval_accuracy > result.cutoff_accuracy)
    n = len(failed)
    for row in result.rows:
        assert 0 <= row["ta_low"] <= row["ta"] <= row["ta_high"] <= 100
        k = int(np.sum(result.flags[row["method"]] == failed))
        assert (row["ta_low"], row["ta_high"]) == pytest.approx(
            tuple(100 * v for v in wilson_interval(k, n)))
        assert 0 < row["p_vs_best"] <= 1
        assert row["tied_with_best"] == (row["p_vs_best"] >= 0.05)
    # exactly one best: the first highest TA, p = 1 against itself
    top = max(r["ta"] for r in result.rows)
    (best,) = [r for r in result.rows if r["best"]]
    assert best is next(r for r in result.rows if r["ta"] == top)
    assert best["p_vs_best"] == 1.0 and best["tied_with_best"] is True
    # each p-value is McNemar's exact test against the best on the stored verdicts
    right = {r["method"]: result.flags[r["method"]] == failed for r in result.rows}
    for row in result.rows:
        if row is not best:
            assert row["p_vs_best"] == pytest.approx(
                mcnemar_exact(right[row["method"]], right[best["method"]]))


def test_compare_refuses_equal_seeds_and_non_classifiers(tiny_model):
    loaded, data = tiny_model
    with pytest.raises(ConfigError, match="different seeds"):
        compare(loaded, FAULT, data.test, seed=3, eval_seed=3)
    # TA, TE and YL need a pass/fail from a classifier's accuracy: any other task is refused,
    # before a chip is drawn, even with seeds that would be accepted
    for task in ("segmentation", "generation", "discrimination"):
        other = dataclasses.replace(loaded, task=task)
        with pytest.raises(ConfigError, match=f"needs a classifier; .* is a {task} model"):
            compare(other, FAULT, data.test, seed=0, eval_seed=1)


def test_run_round_trip_and_report_sections(counted, tmp_path):
    result, _ = counted
    run = save_run(result, tmp_path / "run", 95.0)
    doc, tensors = load_run(run)
    assert [r["method"] for r in doc["rows"]] == [r["method"] for r in result.rows]
    assert set(tensors) == {"egis.images", "btv.mean", "btv.variance"}
    assert doc["methods"]["btv"]["flag_word"] == "uncertain"
    saved = {p.stem: TestMethod.load(p) for p in (run / "tests").glob("*.safetensors")}
    assert set(saved) == set(result.methods)  # every fitted test, for `cimtest export`
    assert saved["egis"].threshold_ == result.methods["egis"].threshold_
    assert doc["methods"]["egis"]["chosen"] == result.methods["egis"].chosen_.tolist()
    assert (run / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(doc["flag_rate_by_drop"]["btv"]) == len(doc["drop_bins"]) - 1
    page = write_report(doc, tensors, tmp_path / "report.html")
    checker = TagChecker()
    checker.feed(page.read_text())
    assert checker.errors == [] and checker.stack == []
    assert checker.sections == list(SECTIONS)
    assert page.read_text().count("data:image/png;base64,") == 7
    # the table shows TA's interval, the p-value against the best and the tie mark's note
    (best,) = [r for r in result.rows if r["best"]]
    text = page.read_text()
    assert f"{best['ta']:.1f} ({best['ta_low']:.1f}-{best['ta_high']:.1f})†" in text
    assert "<th>p vs best</th>" in text and "<td>best</td>" in text
    assert "McNemar&#39;s exact test" in text  # escaped (Jinja2's autoescape)
    assert not list(tmp_path.glob(".*"))  # no temporary left behind


def test_a_row_note_is_marked_and_spelled_out_in_the_report(counted, tmp_path):
    """A row that carries a note (an FGSM count that separates nothing) shows the mark after
    its name and the note under the table."""
    result, _ = counted
    doc, tensors = load_run(save_run(result, tmp_path / "run", 95.0))
    for row in doc["rows"]:
        row["note"] = "separates nothing" if row["method"] == "fgsm" else None
    text = write_report(doc, tensors, tmp_path / "report.html").read_text()
    assert "<td>fgsm ‡</td>" in text and "<p class=\"note\">‡ fgsm: separates nothing.</p>" in text
    assert text.count("‡") == 2  # no other row is marked


def test_every_value_in_the_report_is_escaped(counted, tmp_path):
    """Names and notes come from the user (a model's name, a fault spec): markup in them is
    shown, never run."""
    result, _ = counted
    doc, tensors = load_run(save_run(result, tmp_path / "run", 95.0))
    doc["setup"]["model"] = "<script>alert('x')</script>"
    doc["rows"][0]["note"] = "a <b>bold</b> & \"quoted\" claim"
    text = write_report(doc, tensors, tmp_path / "report.html").read_text()
    assert "<script>" not in text and "<b>" not in text
    assert "<title>cimtest comparison: &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; under" in text
    assert "a &lt;b&gt;bold&lt;/b&gt; &amp; &#34;quoted&#34; claim." in text


def test_load_run_errors(tmp_path):
    with pytest.raises(ArtifactError, match="not a comparison run"):
        load_run(tmp_path)
    (tmp_path / "comparison.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupt"):
        load_run(tmp_path)
    (tmp_path / "comparison.json").write_text('{"format": "other"}')
    with pytest.raises(ArtifactError, match="not a cimtest comparison"):
        load_run(tmp_path)


def test_eval_fault_scores_the_tests_on_other_chips(tiny_model):
    """Fitted on faulty chips, scored on ideal ones: every evaluation chip is the ideal chip,
    so every one passes A_cutoff (the training chips', below the ideal chip's accuracy)."""
    from cimtest.methods import NoiseImagesTest

    loaded, data = tiny_model
    result = compare(loaded, FAULT, data.test, methods={"noise": NoiseImagesTest(k=2, seed=0)},
                     train_chips=40, eval_chips=8, eval_fault="none")
    assert result.setup["eval_fault"] == "none" and result.setup["fault"] == FAULT
    assert np.unique(result.eval_accuracy).size == 1  # eight copies of the ideal chip
    assert result.eval_accuracy[0] > result.cutoff_accuracy
    assert np.unique(result.train_accuracy).size > 1


def test_one_fit_scored_across_several_physics(tiny_model):
    """`compare_across` fits once: each comparison's tests are the same objects, its A_cutoff
    the training chips', and the evaluation under the training spec equals `compare`'s."""
    from cimtest.methods import NoiseImagesTest
    from cimtest.report import compare_across

    loaded, data = tiny_model
    kw = {"train_chips": 40, "eval_chips": 16}
    same, other = compare_across(loaded, FAULT, data.test, eval_faults=(None, "bitflip:p=0.01"),
                                 methods={"noise": NoiseImagesTest(k=2, seed=0)}, **kw)
    alone = compare(loaded, FAULT, data.test, methods={"noise": NoiseImagesTest(k=2, seed=0)},
                    **kw)
    assert same.methods["noise"] is other.methods["noise"]
    assert same.cutoff_accuracy == other.cutoff_accuracy == alone.cutoff_accuracy
    assert same.rows[0]["ta"] == alone.rows[0]["ta"]
    np.testing.assert_array_equal(same.eval_accuracy, alone.eval_accuracy)
    assert other.setup["eval_fault"] == "bitflip:p=0.01"
    assert not np.array_equal(other.eval_accuracy, same.eval_accuracy)
