"""Quality metrics of model outputs (accuracy, mean IoU) and of tests on chips.

Test metrics (coverage, verifiable coverage, false-alarm rates) are proportions over a
finite population of simulated chips; each comes as a `Rate` with its 95 % Wilson interval,
which stays inside [0, 1] and is sensible even at 0 % or 100 % (where the normal
approximation collapses to a zero-width band). Tests scored on the same chips are compared
pairwise by McNemar's exact test (`mcnemar_exact`, `paired_against_best`), which uses the
pairing that two separate intervals ignore.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import torch

from cimtest.cutoffs import Cutoff, cutoff_at, parse_cutoff, pass_fraction
from cimtest.exceptions import ConfigError

__all__ = [
    "Cutoff",
    "Rate",
    "accuracy",
    "coverage",
    "cutoff_at",
    "false_alarm_rate",
    "mcnemar_exact",
    "mean_iou",
    "paired_against_best",
    "parse_cutoff",
    "pass_fraction",
    "rate",
    "roc_auc",
    "roc_curve",
    "test_metrics",
    "verifiable_coverage",
    "wilson_interval",
]


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Return the top-1 accuracy of `logits` against labels `y`, in percent.

    Parameters
    ----------
    logits : torch.Tensor
        float (N, C): one row of class scores per sample.
    y : torch.Tensor
        int64 (N,): the true class of each sample.

    Returns
    -------
    float
        100 · (fraction of rows whose argmax equals the label), in [0, 100].

    Raises
    ------
    ConfigError
        If the shapes do not match or N is 0.
    """
    if logits.dim() != 2 or y.shape != logits.shape[:1] or logits.shape[0] == 0:
        raise ConfigError(
            f"accuracy needs logits (N, C) and labels (N,) with N > 0; "
            f"got {tuple(logits.shape)} and {tuple(y.shape)}."
        )
    correct = (logits.argmax(dim=1) == y).sum().item()
    return 100.0 * correct / y.shape[0]


def mean_iou(logits: torch.Tensor, y: torch.Tensor, num_classes: int) -> float:
    """Return the mean intersection-over-union of per-pixel predictions, in [0, 1].

    Intersections and unions are summed over every pixel of every image first (dataset-level
    IoU per class), then averaged over the classes present in the prediction or the truth;
    a class absent from both would give 0/0 and is skipped.

    Parameters
    ----------
    logits : torch.Tensor
        float (N, C, H, W): per-pixel class scores; the prediction is the argmax over C.
    y : torch.Tensor
        int64 (N, H, W): the true class of each pixel, in ``[0, num_classes)``.
    num_classes : int
        Number of classes, at least C.

    Raises
    ------
    ConfigError
        If the shapes do not match, the batch is empty, or a label is out of range.
    """
    if (
        logits.dim() != 4
        or y.shape != logits.shape[:1] + logits.shape[2:]
        or logits.shape[0] == 0
        or logits.shape[1] > num_classes
    ):
        raise ConfigError(
            f"mean_iou needs logits (N, C, H, W), labels (N, H, W) with N > 0 and "
            f"C <= num_classes={num_classes}; got {tuple(logits.shape)} and {tuple(y.shape)}."
        )
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ConfigError(f"mean_iou: labels must be in [0, {num_classes}).")
    pred = logits.argmax(dim=1).reshape(-1)
    truth = y.reshape(-1)
    pred_count = torch.bincount(pred, minlength=num_classes)
    true_count = torch.bincount(truth, minlength=num_classes)
    inter = torch.bincount(truth[pred == truth], minlength=num_classes)
    union = pred_count + true_count - inter
    present = union > 0
    return (inter[present].double() / union[present].double()).mean().item()


@dataclass(frozen=True)
class Rate:
    """A proportion over `n` chips with its 95 % Wilson interval (all fractions in [0, 1]).

    With ``n = 0`` the value and both ends are NaN: there was nothing to count.
    """

    value: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        """JSON-safe view."""
        return asdict(self)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Return the Wilson score interval of a binomial proportion ``successes / n``.

    SciPy's (`scipy.stats.binomtest(...).proportion_ci(method="wilson")`) at the two-sided
    level of the normal quantile `z`. Unlike the normal approximation it stays inside [0, 1]
    and keeps a width at 0 or n successes.

    Parameters
    ----------
    successes : int
        Number of successes, ``0 <= successes <= n``.
    n : int
        Number of trials; ``n = 0`` gives ``(nan, nan)``.
    z : float
        Standard normal quantile of the two-sided level (1.96 for 95 %).

    Returns
    -------
    (float, float)
        ``(low, high)`` with ``0 <= low <= successes / n <= high <= 1``.
    """
    from scipy.stats import binomtest, norm

    if n < 0 or not 0 <= successes <= n:
        raise ConfigError(f"wilson_interval needs 0 <= successes <= n; got {successes}, {n}")
    if n == 0:
        return math.nan, math.nan
    level = 1.0 - 2.0 * float(norm.sf(z))  # 1.96 -> 0.95000042, so SciPy's z is 1.96 again
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=level,
                                                           method="wilson")
    return max(0.0, float(ci.low)), min(1.0, float(ci.high))


def mcnemar_exact(correct_a: np.ndarray | torch.Tensor,
                  correct_b: np.ndarray | torch.Tensor) -> float:
    """Two-sided p-value of McNemar's exact test that two tests are equally accurate.

    Both tests judged the same chips (paired), so the fair question is not whether their
    accuracies differ by more than two independent intervals allow, but whether, on the
    chips where exactly one of them is right, each is right equally often. With b the chips
    only A gets right and c the chips only B gets right, b is Binomial(b + c, 1/2) under
    that hypothesis; the p-value is SciPy's two-sided exact binomial test
    (`scipy.stats.binomtest(b, b + c)`): ``b = 0, c = 6`` gives ``2 · 0.5**6 = 0.03125``,
    ``b = c`` gives 1. Chips both get right or both get wrong carry no evidence and are
    left out; with no discordant chip at all the p-value is 1.

    Parameters
    ----------
    correct_a, correct_b : array of shape (n,)
        bool, True where the test's verdict on chip i matches the truth.

    Returns
    -------
    float
        The p-value, in (0, 1].
    """
    from scipy.stats import binomtest

    a = _as_bool(correct_a, "correct_a")
    b = _as_bool(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ConfigError(f"correct_a and correct_b differ in shape: {a.shape}, {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def paired_against_best(correct: Mapping[str, np.ndarray | torch.Tensor], *,
                        alpha: float = 0.05) -> tuple[str, dict[str, tuple[float, bool]]]:
    """Which tests cannot be told apart from the most accurate one on the same chips.

    The best is the test with the most correct verdicts (the first of equals, in the order
    of `correct`). Every test is compared with it by `mcnemar_exact` on the same chips;
    it is tied with the best when ``p >= alpha`` (the best itself: p = 1, tied). Each
    comparison is a separate test at level `alpha`, not corrected for their number (with
    many tests, a few true differences are called ties and, rarely, a tie a difference), and
    the best is chosen on the chips it is then compared on, which favours it slightly.

    Parameters
    ----------
    correct : mapping of str to array of shape (n,)
        Test name -> bool, True where its verdict on chip i matches the truth; the same
        n chips, in the same order, for every test.
    alpha : float
        Level of each test.

    Returns
    -------
    (str, dict of str to (float, bool))
        The best test's name, and per test (in the order of `correct`) its p-value against
        the best and whether it is tied with the best.
    """
    if not correct:
        raise ConfigError("paired_against_best needs at least one test")
    flags = {name: _as_bool(values, name) for name, values in correct.items()}
    if len({f.shape for f in flags.values()}) != 1:
        raise ConfigError("paired_against_best needs the same chips for every test; got "
                          f"shapes {sorted({f.shape for f in flags.values()})}")
    best = max(flags, key=lambda name: int(flags[name].sum()))  # first of equals
    out = {}
    for name, flag in flags.items():
        p = 1.0 if name == best else mcnemar_exact(flag, flags[best])
        out[name] = (p, p >= alpha)
    return best, out


def rate(flags: np.ndarray | torch.Tensor) -> Rate:
    """Return the fraction of True in `flags` (bool of shape (n,)) with its Wilson interval."""
    flags = _as_bool(flags, "flags")
    n, k = int(flags.size), int(flags.sum())
    low, high = wilson_interval(k, n)
    return Rate(k / n if n else math.nan, low, high, n)


def coverage(sigma_y: np.ndarray | torch.Tensor, threshold: float, *, strict: bool = False) -> Rate:
    """Uncertainty-estimation coverage, paper 1 eq. 6: the fraction of chips with σ_y >= t.

    Eq. 6 counts every faulty chip as one that should be flagged ("each injected variation
    and fault is assumed to impact inference accuracy"); pass only the chips whose accuracy
    dropped to measure coverage of harmful chips alone.

    Parameters
    ----------
    sigma_y : array of shape (M,)
        float, one uncertainty estimate per faulty chip.
    threshold : float
        The test's threshold t.
    strict : bool
        Count ``σ_y > t`` instead (the verdict rule of `BayesianTestVector.decide`); it
        differs from eq. 6 only for chips whose σ_y equals t exactly.
    """
    sigma = _as_float(sigma_y, "sigma_y")
    return rate(sigma > threshold if strict else sigma >= threshold)


def verifiable_coverage(
    sigma_y: np.ndarray | torch.Tensor,
    threshold: float,
    accuracy: np.ndarray | torch.Tensor,
    baseline: float,
    *,
    strict: bool = False,
) -> Rate:
    """Verifiable coverage, paper 1 eq. 7: fraction of chips with σ_y >= t AND A_test < A_base.

    The denominator is all `M` chips, as in the paper: a chip flagged although its accuracy
    did not drop does not count, nor does an unflagged chip.

    Parameters
    ----------
    sigma_y : array of shape (M,)
        float, one uncertainty estimate per faulty chip.
    threshold : float
        The test's threshold t.
    accuracy : array of shape (M,)
        float, each chip's accuracy A_test (any unit, the same as `baseline`).
    baseline : float
        A_baseline, the ideal chip's accuracy.
    strict : bool
        Flag ``σ_y > t`` instead of ``σ_y >= t`` (see `coverage`).
    """
    sigma = _as_float(sigma_y, "sigma_y")
    acc = _as_float(accuracy, "accuracy")
    if acc.shape != sigma.shape:
        raise ConfigError(f"sigma_y and accuracy differ in shape: {sigma.shape}, {acc.shape}")
    flagged = sigma > threshold if strict else sigma >= threshold
    return rate(flagged & (acc < baseline))


def false_alarm_rate(flags: np.ndarray | torch.Tensor) -> Rate:
    """Fraction of harmless chips flagged uncertain (bool (n,), True = flagged), with CI.

    Pass the verdicts of chips that should pass: the ideal chip under fresh samples of the
    test vector, or faulty chips whose accuracy did not drop.
    """
    return rate(flags)


def roc_auc(scores: np.ndarray | torch.Tensor, positives: np.ndarray | torch.Tensor) -> float:
    """Area under the ROC curve of `scores` for the bool labels `positives`.

    scikit-learn's `roc_auc_score`: the probability that a random positive scores higher
    than a random negative, ties counted one half. NaN when either class is empty.

    Parameters
    ----------
    scores : array of shape (n,)
        float, higher = more likely positive (e.g. σ_y).
    positives : array of shape (n,)
        bool, the truth (e.g. "accuracy dropped by at least 1 point").
    """
    from sklearn.metrics import roc_auc_score

    s, pos = _scores_and_truth(scores, positives)
    if pos.all() or not pos.any():
        return math.nan
    return float(roc_auc_score(pos, s))


def roc_curve(
    scores: np.ndarray | torch.Tensor, positives: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of ``score >= t`` at every distinct threshold t.

    Returns float64 arrays (fpr, tpr) from (0, 0) to (1, 1), one point per distinct score
    (ties move both rates at once), so the trapezoid area equals `roc_auc`; scikit-learn's
    `roc_curve` without dropping collinear points. With one class empty its rates are 0.
    """
    from sklearn.metrics import roc_curve as sklearn_roc_curve

    s, pos = _scores_and_truth(scores, positives)
    if pos.all() or not pos.any():
        _, counts = np.unique(-s, return_counts=True)  # tie groups, highest score first
        rates = np.r_[0.0, np.cumsum(counts) / s.size]
        zeros = np.zeros_like(rates)
        return (zeros, rates) if pos.all() else (rates, zeros)
    fpr, tpr, _ = sklearn_roc_curve(pos, s, drop_intermediate=False)
    return fpr.astype(np.float64), tpr.astype(np.float64)


def _scores_and_truth(
    scores: np.ndarray | torch.Tensor, positives: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    s = _as_float(scores, "scores")
    pos = _as_bool(positives, "positives")
    if pos.shape != s.shape:
        raise ConfigError(f"scores and positives differ in shape: {s.shape}, {pos.shape}")
    return s, pos


def test_metrics(
    predicted_pass: np.ndarray | torch.Tensor,
    accuracy: np.ndarray | torch.Tensor,
    cutoff: float,
) -> dict[str, float]:
    """TA, TE, YL, CTE and BTE of paper 2 §VII, in percent of all chips.

    A chip truly passes iff its accuracy ``A > cutoff``. TP: pass predicted pass; TN: fail
    predicted fail; FP (test escape): fail predicted pass; FN (yield loss): pass predicted
    fail. CTE counts predicted-pass chips with ``A < cutoff - 1``; BTE predicted-pass chips
    with ``cutoff - 1 <= A <= cutoff`` (so TE = CTE + BTE).

    Parameters
    ----------
    predicted_pass : numpy.ndarray or torch.Tensor
        bool (n,): the test's verdicts, True = pass.
    accuracy : numpy.ndarray or torch.Tensor
        float (n,): the chips' accuracies in percent.
    cutoff : float
        A_cutoff in percent (e.g. `cutoff_at` of the training chips).

    Returns
    -------
    dict of str to float
        ``ta, te, yl, cte, bte`` in percent (NaN for an empty population).
    """
    passed = _as_bool(predicted_pass, "predicted_pass")
    acc = _as_float(accuracy, "accuracy")
    if passed.shape != acc.shape:
        raise ConfigError(f"predicted_pass {passed.shape} and accuracy {acc.shape} differ")
    n = acc.size
    truth = acc > cutoff
    counts = {
        "ta": int((passed == truth).sum()),
        "te": int((passed & ~truth).sum()),
        "yl": int((~passed & truth).sum()),
        "cte": int((passed & (acc < cutoff - 1)).sum()),
        "bte": int((passed & (acc >= cutoff - 1) & (acc <= cutoff)).sum()),
    }
    return {k: 100.0 * v / n if n else math.nan for k, v in counts.items()}


test_metrics.__test__ = False  # a library function, not a pytest test despite the name


def _as_float(values: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 1:
        raise ConfigError(f"{name} must be one-dimensional; got shape {array.shape}")
    return array


def _as_bool(values: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
    array = np.asarray(array)
    if array.ndim != 1:
        raise ConfigError(f"{name} must be one-dimensional; got shape {array.shape}")
    return array.astype(bool)
