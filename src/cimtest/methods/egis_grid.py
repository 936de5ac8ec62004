"""Several EGIS tests from one fit: one generator, one SID and one signature campaign shared
by a compaction and a detector per (cutoff, K), as the paper's Fig. 5 compares them.

The generator sees only the model and the signatures only the chips, so neither depends on
the cutoff or on K: fitting A50/A60/A70 x K = 2, 4, 8, 16 costs one generator and one
campaign plus twelve annealing runs on the cached signatures. A test set is saved as
TESTDIR with ``grid.json``, ``sid.safetensors`` (the SID and the generator's entropy
curve), the figure ``entropy.png`` (paper Fig. 3) and one folder per member (``A50-k4/``
with the test ``test.safetensors`` and its ``reward.png`` and ``images.png``, paper
Fig. 4a/4b). ``grid.json``
records the digest of the SID and of every member's artefact and carries a digest of its own,
so an edited index, or a member swapped for another test, is refused on load.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cimtest._atomic import atomic_directory
from cimtest.artifacts import Artifact, load_artifact, save_artifact, stored_digest
from cimtest.exceptions import ArtifactError, ConfigError
from cimtest.fingerprint import DIGEST_KEY, content_digest
from cimtest.loading import LoadedModel
from cimtest.methods._model import model_reference, resolve_model
from cimtest.methods.base import ChipOutcomes, Chips, check_is_fitted, chips_device
from cimtest.methods.egis import GENERATOR_PARAMS, EntropyImageTest
from cimtest.progress import Progress, staged

__all__ = [
    "ARTIFACT_FILE",
    "GRID_FILE",
    "SID_FILE",
    "fit_grid",
    "load_proposal",
    "member_dirs",
    "member_name",
    "save_grid",
    "save_proposal",
]

_logger = logging.getLogger(__name__)

ARTIFACT_FILE = "test.safetensors"
"""The member test inside a member's folder."""

GRID_FILE = "grid.json"
"""The test set's index: its members (cutoff, K, folder) and what they share."""

SID_FILE = "sid.safetensors"
"""The synthetic image dataset and the generator's entropy curve."""

SID_METHOD = "egis-sid"
"""The ``method`` of a SID artefact."""


def member_name(cutoff: str | None, k: int) -> str:
    """Folder of one member test, e.g. ``"A50-k4"``."""
    return f"{cutoff or 'labels'}-k{k}"


def fit_grid(
    model: LoadedModel | nn.Module,
    chips: Chips,
    outcomes: Sequence[ChipOutcomes],
    ks: Sequence[int],
    *,
    proposal: EntropyImageTest | None = None,
    progress: Progress | None = None,
    **params: object,
) -> dict[tuple[str | None, int], EntropyImageTest]:
    """One EGIS test per (labelling, K), sharing the generator and one measurement of the chips.

    Parameters
    ----------
    model : LoadedModel or torch.nn.Module
        The float model (a module needs an ``input_shape`` attribute).
    chips : Chips
        The D training chips (a `Population`, or `cimtest.engine.StoredChips` to keep their
        outputs in a store and resume a killed fit).
    outcomes : sequence of ChipOutcomes
        The same chips labelled by each cutoff (distinct ``cutoff`` names; only the labels
        are read).
    ks : sequence of int
        The K values, each fitted for every labelling.
    proposal : EntropyImageTest, optional
        A SID made earlier for this model (`load_proposal`): used instead of training the
        generator, e.g. to fit tests for another population on the same images.
    progress : Progress, optional
        ``progress(done, total, stage)`` through the generator, the chips and the compaction.
    **params
        Parameters of `EntropyImageTest` other than ``k`` (sid_size, steps, seed, ...).

    Returns
    -------
    dict of (cutoff, K) to EntropyImageTest
        In the order of `outcomes`, then `ks`.
    """
    outcomes = list(outcomes)
    ks = sorted({int(k) for k in ks})
    if not outcomes or not ks:
        raise ConfigError("fit_grid needs at least one labelling of the chips and one K")
    if any(len(o.passed) != chips.n for o in outcomes):
        raise ConfigError(f"fit_grid needs one label per chip ({chips.n}) in every labelling")
    if len({o.cutoff for o in outcomes}) < len(outcomes):
        raise ConfigError("fit_grid needs a distinct cutoff name per labelling")
    base = EntropyImageTest(k=ks[0], **params)
    _, _, fingerprint, _ = resolve_model(model)
    if proposal is None:
        base.propose(model, progress=progress, device=chips_device(chips))
    elif proposal.fingerprint_ != fingerprint:
        raise ArtifactError("the SID was made for another model (fingerprint "
                            f"{proposal.fingerprint_[:12]}..., this model {fingerprint[:12]}...)")
    else:
        base.adopt_proposal(proposal)
        base.model_ = model_reference(model)  # an SID read back does not know the model
    signatures = chips.outputs(base.sid_, progress=staged(progress, "signatures"))
    tests = {}
    for labelled in outcomes:
        for k in ks:
            test = base.sharing_proposal(k).learn(signatures, labelled.labels_only(),
                                                  progress=progress)
            test.training_ = {**chips.recipe(), "cutoff": labelled.cutoff,
                              "passed": int(labelled.passed.sum())}
            tests[(labelled.cutoff, k)] = test
            _logger.info("egis %s K=%d: images %s, best validation accuracy %.2f %%",
                         labelled.cutoff, k, test.chosen_.tolist(), test.best_reward_)
    return tests


def save_grid(
    testdir: str | Path,
    tests: dict[tuple[str | None, int], EntropyImageTest],
    info: dict[str | None, dict[str, object]] | None = None,
    *,
    figures: Callable[[Path, dict[str, EntropyImageTest]], None] | None = None,
) -> Path:
    """Write the test set TESTDIR atomically (a crash never leaves half of it); return it.

    Parameters
    ----------
    testdir : str or Path
        Folder to write (replaced if it exists).
    tests : dict of (cutoff, K) to EntropyImageTest
        What `fit_grid` returns (members sharing one SID).
    info : dict of cutoff to dict, optional
        Metadata saved with each member of that cutoff (e.g. ``cutoff_accuracy``).
    figures : callable, optional
        ``figures(folder, members)`` draws into the set's folder before it is renamed into
        place, `members` by member folder name (the CLI passes
        `cimtest.report.plots.write_egis_figures`: paper 2's Fig. 3, 4a and 4b).
    """
    if not tests:
        raise ConfigError("save_grid needs at least one test")
    testdir = Path(testdir)
    if not testdir.parent.is_dir():
        raise ArtifactError(f"folder '{testdir.parent}' does not exist")
    first = next(iter(tests.values()))
    members = []
    try:
        with atomic_directory(testdir) as tmp:
            save_proposal(tmp / SID_FILE, first)
            for (cutoff, k), test in tests.items():
                name = member_name(cutoff, k)
                (tmp / name).mkdir()
                test.save(tmp / name / ARTIFACT_FILE,
                          info=(info or {}).get(cutoff, {}) | {"cutoff": cutoff})
                members.append({"cutoff": cutoff, "k": k, "dir": name,
                                "chosen": test.chosen_.tolist(),
                                "best_reward": test.best_reward_,
                                "digest": stored_digest(tmp / name / ARTIFACT_FILE)})
            if figures is not None:
                figures(tmp, {member_name(c, k): test for (c, k), test in tests.items()})
            index = json.loads(json.dumps({
                "members": members, "sid_size": first.sid_size, "steps": first.steps,
                "sid_entropy": list(first.sid_entropy_), "training": first.training_,
                "fingerprint": first.fingerprint_, "sid_digest": stored_digest(tmp / SID_FILE)}))
            index[DIGEST_KEY] = content_digest(index)
            (tmp / GRID_FILE).write_text(json.dumps(index, indent=2))
    except OSError as exc:
        raise ArtifactError(f"cannot write test set '{testdir}': {exc}") from exc
    return testdir


def save_proposal(path: str | Path, test: EntropyImageTest) -> Path:
    """Write the SID, the generator's entropy curve and the parameters that made them as a
    safetensors artefact (atomic), for `load_proposal`."""
    check_is_fitted(test, ("sid_",))
    params = {name: getattr(test, name) for name in (*GENERATOR_PARAMS, "seed")}
    if params["input_range"] is not None:
        params["input_range"] = list(params["input_range"])
    return save_artifact(path, Artifact(
        method=SID_METHOD,
        tensors={"sid": test.sid_.contiguous(),
                 "entropy_curve": torch.from_numpy(np.ascontiguousarray(test.entropy_curve_))},
        params=params, thresholds={}, input_shape=test.input_shape_,
        fingerprint=test.fingerprint_, info={"sid_entropy": list(test.sid_entropy_)}))


def load_proposal(
    path: str | Path, expected_fingerprint: str | None = None, *, force: bool = False
) -> EntropyImageTest:
    """An `EntropyImageTest` holding the SID saved at `path` (a test set's
    ``sid.safetensors``), ready for `fit_grid(proposal=...)`; `ArtifactError` if the file is
    not a SID or was made for another model (unless `force`)."""
    artifact = load_artifact(path, expected_fingerprint, force=force)
    if artifact.method != SID_METHOD:
        raise ArtifactError(f"'{path}' holds a {artifact.method} artefact, not an EGIS SID")
    test = EntropyImageTest(**{k: tuple(v) if isinstance(v, list) else v
                               for k, v in artifact.params.items()})
    test.sid_ = artifact.tensors["sid"]
    test.entropy_curve_ = artifact.tensors["entropy_curve"].numpy()
    test.sid_entropy_ = tuple(float(v) for v in artifact.info["sid_entropy"])
    test.input_shape_ = tuple(artifact.input_shape)
    test.fingerprint_ = artifact.fingerprint
    test.training_ = {}
    return test


def member_dirs(
    path: str | Path, ks: Sequence[int] | None = None, cutoffs: Sequence[str] | None = None
) -> list[Path]:
    """The EGIS test folders PATH stands for: its members (a test set, filtered by `ks` and
    `cutoffs`), or PATH itself (one test). `ArtifactError` if it is neither, none match, the
    index fails its digest check, or a chosen member is not the test saved with the set."""
    path = Path(path)
    index = path / GRID_FILE
    if not path.exists():
        raise ArtifactError(f"EGIS test '{path}' does not exist")
    if not index.is_file():
        if not (path / ARTIFACT_FILE).is_file():
            raise ArtifactError(f"'{path}' is neither an EGIS test nor a test set (no "
                                f"{ARTIFACT_FILE} or {GRID_FILE})")
        return [path]
    try:
        document = json.loads(index.read_text())
        members = document["members"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"'{index}' is not a readable test-set index: {exc}") from None
    _check_index(index, document)
    wanted_cutoffs = None if cutoffs is None else {c.upper() for c in cutoffs}
    chosen = [path / m["dir"] for m in members
              if (ks is None or m["k"] in ks)
              and (wanted_cutoffs is None or str(m["cutoff"]).upper() in wanted_cutoffs)]
    if not chosen:
        raise ArtifactError(f"test set '{path}' has no member with K in {list(ks or [])} and "
                            f"cutoff in {sorted(wanted_cutoffs or [])}; it has "
                            + ", ".join(m["dir"] for m in members))
    recorded = {m["dir"]: m.get("digest") for m in members}
    for member in chosen:
        if recorded[member.name] is not None and \
                stored_digest(member / ARTIFACT_FILE) != recorded[member.name]:
            raise ArtifactError(f"'{member}' is not the test saved with test set '{path}' (its "
                                "digest differs from the one in grid.json); refit the set")
    return chosen


def _check_index(index: Path, document: dict) -> None:
    """Refuse a test-set index whose digest is not that of its content; warn when it has
    none (a set written before cimtest recorded digests)."""
    if DIGEST_KEY not in document:
        _logger.warning("test set index '%s' has no digest (written before cimtest recorded "
                        "them), so an edit to it would go unnoticed; refit the set to add one",
                        index)
        return
    if document[DIGEST_KEY] != content_digest(document):
        raise ArtifactError(f"test set index '{index}' fails its digest check: it was edited or "
                            "corrupted after it was written (--force does not override this); "
                            "refit the set")
