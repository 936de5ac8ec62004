"""The `Fault` template, the `Scope` a fault acts on, and the ordered `FaultStack`.

Every non-ideality is a frozen dataclass subclass of `Fault`: its parameters first, then
``scope`` and ``per_read``. `Fault.apply` resolves the scope of each chip and hands the
in-scope layers to one hook, `Fault._perturb`, which is all a subclass implements.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from cimtest._validation import check_interval, check_option
from cimtest.exceptions import ConfigError

if TYPE_CHECKING:
    import torch

    from cimtest.faults.layout import LayerSlot, WeightLayout
    from cimtest.faults.sparse import SparseEdits

# torch is imported by the methods that draw and apply: a fault and its spec are plain data,
# so that parsing and checking a spec imports no torch (a bad spec is refused at once).

__all__ = ["Fault", "FaultStack", "Scope"]

_SPEC_CHARS = frozenset("+@,=: \t\n")
"""Characters a layer name cannot hold, because the spec language uses them."""


@dataclass(frozen=True)
class Scope:
    """Which mapped layers a fault acts on: all, a named subset, or a random fraction per chip."""

    layers: tuple[str, ...] | None = None
    """Names of the layers to act on (``None`` = every mapped layer)."""
    fraction: float | None = None
    """Or a fraction in (0, 1] of the L layers, drawn anew for each chip: ``round(fraction * L)``
    layers (at least 1, Python's half-to-even rounding), chosen with
    ``torch.randperm(L, generator=chip_generator)``."""

    def __post_init__(self) -> None:
        if self.layers is not None and self.fraction is not None:
            raise ConfigError("a fault scope takes named layers or a fraction, not both")
        if self.fraction is not None:
            check_interval("fraction", self.fraction, 0, 1, "the fault scope", closed="right")
        if self.layers is not None:
            layers = (self.layers,) if isinstance(self.layers, str) else tuple(self.layers)
            bad = [n for n in layers if not isinstance(n, str) or not n or _SPEC_CHARS & set(n)]
            if not layers or bad:
                raise ConfigError(
                    "a fault scope needs one or more layer names without spaces or any of "
                    f"'+@,=:'; got {self.layers!r}"
                )
            object.__setattr__(self, "layers", layers)

    def check_layout(self, layout: WeightLayout) -> None:
        """Raise `ConfigError` if a named layer is not a mapped layer of `layout`."""
        if self.layers is None:
            return
        unknown = [name for name in self.layers if name not in layout.names]
        if unknown:
            raise ConfigError(
                f"unknown layer {', '.join(map(repr, unknown))} in a fault scope; "
                f"the mapped layers are: {', '.join(layout.names)}"
            )

    def select(self, layout: WeightLayout, generator: torch.Generator | None) -> tuple[int, ...]:
        """Indices (increasing) of the layers of `layout` in scope for one chip.

        Only a fractional scope draws, from that chip's `generator`.
        """
        import torch

        n_layers = len(layout.layers)
        if self.fraction is not None:
            count = max(1, round(self.fraction * n_layers))
            chosen = torch.randperm(n_layers, generator=generator, device=generator.device)[:count]
            return tuple(sorted(chosen.tolist()))
        if self.layers is None:
            return tuple(range(n_layers))
        self.check_layout(layout)
        wanted = set(self.layers)
        return tuple(i for i, name in enumerate(layout.names) if name in wanted)

    def groups(
        self, layout: WeightLayout, generators: Sequence[torch.Generator]
    ) -> dict[tuple[int, ...], list[int]]:
        """The chips (indices into `generators`) grouped by their in-scope layers."""
        if self.fraction is None:
            return {self.select(layout, None): list(range(len(generators)))}
        groups: dict[tuple[int, ...], list[int]] = {}
        for row, generator in enumerate(generators):
            groups.setdefault(self.select(layout, generator), []).append(row)
        return groups

    def spec(self) -> str:
        """The scope's modifier in spec text: ``""``, ``"@layers=0.3"`` or ``"@layers=a,b"``."""
        if self.fraction is not None:
            return f"@layers={float(self.fraction)!r}"
        if self.layers is not None:
            return "@layers=" + ",".join(self.layers)
        return ""


class Fault(ABC):
    """A non-ideality that turns a batch of chips' weights into perturbed weights.

    Subclasses are ``@dataclass(frozen=True)`` with their parameters, then a `Scope` field
    ``scope`` (default: all layers) and ``per_read: bool = False``. They set the class variables
    `kind` and `level_name` and implement `_check_parameters` and `_perturb`.
    """

    kind: ClassVar[str]
    """Keyword of the fault in the spec language, e.g. ``"bitflip"``."""
    level_name: ClassVar[str]
    """The parameter that sets the fault's strength (``"p"``, ``"eta"`` or ``"sigma"``); 0 is
    the ideal chip. ``cimtest calibrate`` bisects it. The aihwkit kinds' level is ``"t"``,
    seconds after programming, where 0 is a freshly programmed chip."""
    sparse: ClassVar[bool] = False
    """Whether the fault draws a few faulty cells rather than one value per weight; the
    engine then hands it many chips per call (its cost is per call, not per weight)."""
    time_name: ClassVar[str | None] = None
    """The parameter holding the chip's age, seconds since programming, for a fault with a
    time model (``drift``, ``retention``); None for a fault without one. Such a fault draws
    nothing that depends on the age, so the same chip at two ages shares every draw and
    only the deterministic function of the age differs (`FaultStack.at`)."""
    scope: Scope
    per_read: bool

    def __post_init__(self) -> None:
        if not isinstance(self.scope, Scope):
            raise ConfigError(f"the scope of fault '{self.kind}' must be a Scope")
        check_option("per_read", self.per_read, (False, True), f"fault '{self.kind}'")
        self._check_parameters()

    def apply(
        self,
        weights: torch.Tensor,
        layout: WeightLayout,
        generators: Sequence[torch.Generator],
    ) -> torch.Tensor:
        """Perturb a batch of chips' weights in place.

        Parameters
        ----------
        weights : torch.Tensor
            float32 of shape (B, P): row ``b`` holds chip ``b``'s current weights, laid out
            as `layout` says. Modified in place.
        layout : WeightLayout
            Where each mapped layer sits in a row; P = ``layout.numel``.
        generators : sequence of torch.Generator
            One generator per chip, on the device of `weights`. Chip ``b`` draws only from
            ``generators[b]``, so its row never depends on B or on the other rows.

        Returns
        -------
        torch.Tensor
            `weights` itself.
        """
        import torch

        if weights.ndim != 2 or weights.shape[1] != layout.numel:
            raise ValueError(
                f"weights must have shape (chips, {layout.numel}); got {tuple(weights.shape)}"
            )
        if not weights.is_floating_point():
            raise ValueError(f"weights must be floating point; got {weights.dtype}")
        if len(generators) != weights.shape[0]:
            raise ValueError(f"{weights.shape[0]} chips but {len(generators)} generators")
        if not generators:
            return weights
        for chosen, rows in self.scope.groups(layout, generators).items():
            layers = tuple(layout.layers[i] for i in chosen)
            chips = [generators[row] for row in rows]
            if rows == list(range(rows[0], rows[-1] + 1)):
                self._perturb(weights[rows[0] : rows[-1] + 1], layers, layout, chips)
            else:
                index = torch.tensor(rows, device=weights.device)
                part = weights.index_select(0, index)
                self._perturb(part, layers, layout, chips)
                weights.index_copy_(0, index, part)
        return weights

    def with_level(self, value: float) -> Fault:
        """A copy of the fault with its level parameter (`level_name`) set to `value`."""
        return dataclasses.replace(self, **{self.level_name: value})

    def spec(self) -> str:
        """Canonical spec text, e.g. ``"bitflip:p=0.0001@layers=0.3"``.

        Every parameter is written (except an unset optional one), so the text does not depend
        on defaults; ``parse_spec(f.spec()) == FaultStack((f,))``.
        """
        params = ",".join(
            f"{key}={_format_value(getattr(self, field.name))}"
            for key, field in self._fields_by_key().items()
            if getattr(self, field.name) is not None
        )
        return f"{self.kind}:{params}{self.scope.spec()}{'@per-read' if self.per_read else ''}"

    def check_layout(self, layout: WeightLayout) -> None:
        """Raise `ConfigError` if the scope names a layer that `layout` does not have."""
        self.scope.check_layout(layout)

    @classmethod
    def _fields_by_key(cls) -> dict[str, dataclasses.Field]:
        """The fault's parameters by spec key (a field's ``metadata["key"]``, else its name)."""
        return {
            field.metadata.get("key", field.name): field
            for field in dataclasses.fields(cls)
            if field.name not in ("scope", "per_read")
        }

    @abstractmethod
    def _check_parameters(self) -> None:
        """Raise `ConfigError` if a parameter is out of range (called at construction)."""

    @abstractmethod
    def _perturb(
        self,
        weights: torch.Tensor,
        layers: tuple[LayerSlot, ...],
        layout: WeightLayout,
        generators: Sequence[torch.Generator],
    ) -> None:
        """Perturb `layers` of every row of `weights` (b, P) in place; row ``i`` draws only
        from ``generators[i]``, and all rows share the same in-scope `layers`."""


@dataclass(frozen=True)
class FaultStack:
    """Faults applied one after the other, in the order written; ``FaultStack(())`` is the
    ideal chip (spec ``"none"``)."""

    faults: tuple[Fault, ...] = ()
    """The faults, first applied first."""

    def __post_init__(self) -> None:
        faults = tuple(self.faults)
        if not all(isinstance(f, Fault) for f in faults):
            raise ConfigError(f"a FaultStack holds Fault instances; got {self.faults!r}")
        object.__setattr__(self, "faults", faults)

    def apply(
        self,
        weights: torch.Tensor,
        layout: WeightLayout,
        generators: Sequence[torch.Generator],
    ) -> torch.Tensor:
        """Apply every fault in written order to `weights` (B, P) in place; see `Fault.apply`."""
        for fault in self.faults:
            fault.apply(weights, layout, generators)
        return weights

    def apply_sparse(
        self,
        edits: SparseEdits,
        layout: WeightLayout,
        generators: Sequence[torch.Generator],
    ) -> SparseEdits:
        """Apply every fault in written order to `edits` in place, drawing exactly what
        `apply` draws; `ValueError` unless every fault is `sparse` (a cell fault)."""
        if not self.sparse:
            raise ValueError(f"'{self.spec()}' has a fault that is not sparse")
        for fault in self.faults:
            fault.apply_sparse(edits, layout, generators)
        return edits

    def spec(self) -> str:
        """Canonical spec text: the faults' specs joined by ``+``, or ``"none"``."""
        return "+".join(f.spec() for f in self.faults) if self.faults else "none"

    @property
    def per_read(self) -> bool:
        """Whether any fault is redrawn at each forward pass."""
        return any(f.per_read for f in self.faults)

    def split_time(self) -> tuple[FaultStack, FaultStack]:
        """The static faults and the per-read faults, each in written order.

        The engine applies the static part once per chip and the per-read part at every
        forward, on top of it: a per-read fault written before a static one moves after it.
        """
        static = tuple(f for f in self.faults if not f.per_read)
        per_read = tuple(f for f in self.faults if f.per_read)
        return FaultStack(static), FaultStack(per_read)

    @property
    def ages(self) -> bool:
        """Whether a fault of the stack has a time model (`Fault.time_name`)."""
        return any(f.time_name is not None for f in self.faults)

    def at(self, t: float) -> FaultStack:
        """The same chips `t` seconds after programming: every fault with a time model has
        its age set to `t`, the others are unchanged; `ConfigError` if none has a time model.
        """
        if not self.ages:
            raise ConfigError(f"'{self.spec()}' has no fault with a time model (drift, "
                              "retention): its chips do not age")
        return FaultStack(tuple(
            f if f.time_name is None else dataclasses.replace(f, **{f.time_name: float(t)})
            for f in self.faults
        ))

    def split_aging(self) -> tuple[FaultStack, FaultStack]:
        """The faults written before the first one with a time model, and the rest: a chip
        seen at several ages draws the first part once (its draws come first in the chip's
        stream and do not depend on the age)."""
        first = next((i for i, f in enumerate(self.faults) if f.time_name is not None),
                     len(self.faults))
        return FaultStack(self.faults[:first]), FaultStack(self.faults[first:])

    def with_level(self, value: float) -> FaultStack:
        """The stack with its only fault's level set to `value`; `ConfigError` unless the
        stack holds exactly one fault."""
        if len(self.faults) != 1:
            raise ConfigError(
                f"only a single-fault spec has a level to set; '{self.spec()}' has "
                f"{len(self.faults)} faults"
            )
        return FaultStack((self.faults[0].with_level(value),))

    def on_layer_fraction(self, fraction: float) -> FaultStack:
        """The stack with every fault restricted to a random `fraction` of the layers of each
        chip (paper 1's layer-wise injection); `ConfigError` if a fault already has a scope."""
        scoped = [f.spec() for f in self.faults if f.scope != Scope()]
        if scoped:
            raise ConfigError(f"cannot restrict '{scoped[0]}' to a fraction of the layers: it "
                              "already has a layer scope")
        scope = Scope(fraction=float(fraction))
        return FaultStack(tuple(dataclasses.replace(f, scope=scope) for f in self.faults))

    @property
    def sparse(self) -> bool:
        """Whether every fault of the stack is sparse (`Fault.sparse`)."""
        return all(f.sparse for f in self.faults)

    @property
    def kind(self) -> str:
        """The fault kinds in written order joined by ``+`` (``"none"`` for the ideal chip)."""
        return "+".join(f.kind for f in self.faults) if self.faults else "none"

    def check_layout(self, layout: WeightLayout) -> None:
        """Raise `ConfigError` if a fault's scope names a layer that `layout` does not have."""
        for fault in self.faults:
            fault.check_layout(layout)


def _format_value(value: object) -> str:
    """Spec text of a parameter value: shortest round-tripping float, or an int."""
    return repr(float(value)) if isinstance(value, float) else str(value)
