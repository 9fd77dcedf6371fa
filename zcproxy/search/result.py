"""What a search run returns: the chosen architecture, everything evaluated, and what it cost."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .objective import Evaluation, Objective


@dataclass(frozen=True)
class SearchResult:
    """One search run. ``chosen`` is the representative the strategy returns; ``history`` every proxy
    evaluation in order; ``compute_seconds`` what they cost (stored and table values cost 0)."""

    strategy: str
    objective: str
    seed: int
    chosen: int | str
    history: tuple[Evaluation, ...]
    compute_seconds: float
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def evaluations(self) -> int:
        return len(self.history)

    @property
    def archs(self) -> list:
        """Evaluated representatives, in evaluation order."""
        return [e.arch for e in self.history]

    def best_after(self, evaluations: int):
        """Best-scoring architecture among the first ``evaluations`` (earliest on ties).

        For random search and REA this is exactly what the same run with that smaller budget returns.
        """
        if not 1 <= evaluations <= len(self.history):
            raise ValueError(f"evaluations must be in 1..{len(self.history)}, got {evaluations}")
        prefix = self.history[:evaluations]
        return prefix[max(range(len(prefix)), key=lambda i: (prefix[i].score, -i))].arch

    @classmethod
    def from_objective(cls, strategy: str, objective: Objective, seed: int, chosen,
                       **settings: Any) -> "SearchResult":
        settings = {"budget_evaluations": objective.budget.evaluations,
                    "budget_seconds": objective.budget.seconds, **settings}
        chosen = chosen.item() if hasattr(chosen, "item") else chosen  # numpy ints -> int; keys stay str
        return cls(strategy, objective.name, int(seed), chosen, tuple(objective.history),
                   float(objective.compute_seconds), settings)
