"""The documented experiments `cimtest reproduce` reruns: their commands and their tables.

Each `Experiment` lists the `cimtest` commands its document shows (later commands take
calibrated levels from earlier ones) and renders their JSON into the markdown blocks of the
document. One module per document: `btv` (results-btv.md), `egis` (results-egis.md) and
`comparison` (comparison.md), `physics` (physics.md), `field` (field.md); each module's docstring gives its budget on the 2-core
reference machine.
"""

from cimtest.report.experiments import btv, comparison, egis, field, physics
from cimtest.report.experiments.base import Experiment, Results, Step

__all__ = ["EXPERIMENTS", "Experiment", "Results", "Step"]

EXPERIMENTS: dict[str, Experiment] = {**btv.EXPERIMENTS, **egis.EXPERIMENTS,
                                      **comparison.EXPERIMENTS, **physics.EXPERIMENTS,
                                      **field.EXPERIMENTS}
"""Every reproducible experiment by name."""
