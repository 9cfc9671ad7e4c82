"""The share of strangers a gallery accepts (its false-positive identification rate, FPIR) as a
function of the decision threshold and the gallery's size, estimated from labelled data; and
the threshold that keeps it at a target.

Why a pair false-accept rate is not enough: a stranger is compared with every enrolled
identity and accepted when the *best* of those N scores is within the threshold, so the share
of strangers accepted grows with N (at FAR 1e-3 and 500 identities, up to 1 − (1 − 10⁻³)⁵⁰⁰ ≈
39 %).

The estimate. Take a probe p that is not enrolled, and a gallery whose identities are drawn
from the same population as the calibration identities. Given p, its scores against the N
identities are independent draws from p's own score distribution F_p (the identities are
independent of each other; the dependence between a stranger's N scores comes only through
the stranger itself: some faces look like many people, some like nobody). So

    FPIR(t; N) = E_p [ 1 − (1 − F_p(t))^N ],

exactly, and an estimate is the mean over calibration probes of that expression with F_p(t)
the share of p's scores against other identities that are <= t. Treating all scores as
independent instead (1 − (1 − F(t))^N with F pooled over probes) overestimates FPIR (the
function is concave in F_p: Jensen), so it is a bound, used where too few probes support the
per-probe estimate.

Only each probe's smallest scores matter for rates up to tens of percent: `StrangerScores`
keeps the K smallest, and counts a probe whose K-th score is within the threshold as
accepted outright (an upper bound, exact when N is large against the identities it was
scored on).

Support: an estimate at rate f rests on the probes accepted at it; with P probes about f·P
of them. It is quoted as supported when at least `MIN_STRANGERS_ACCEPTED` are (5: a Poisson
count of 5 is within a factor 2 of its mean 19 times in 20).

Nothing here imports torch (the numpy arrays come from either runtime).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

MIN_STRANGERS_ACCEPTED = 5
"""Probes that must be accepted at a threshold for its FPIR estimate to be quoted as
supported."""
DEFAULT_FPIR = 0.01
"""The target a gallery is created with when no rule is given: 1 stranger in 100 accepted."""
SMALLEST_KEPT = 64
"""How many of each probe's smallest stranger scores a gallery keeps (it scores each probe
against its own N − 1 other identities, so a probe with 64 within the threshold is accepted
outright: 1 − (1 − 64/N)^N ≈ 1)."""
TABLE_KEPT = 1024
"""How many a model's calibration keeps per probe (its probes are scored against up to
20,000 examples, far more than the small galleries its table serves)."""
TABLE_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000,
               50_000, 100_000, 200_000, 500_000, 1_000_000)  # fmt: skip
TABLE_TARGETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


@dataclass(frozen=True)
class StrangerScores:
    """Each probe's smallest scores against identities that are not its own.

    Attributes:
        smallest: (P, K) float64, each row ascending, padded with inf where a probe had fewer
            than K other identities.
        identities: (P,) how many other identities each probe was scored against (n_p).
    """

    smallest: np.ndarray
    identities: np.ndarray

    @property
    def probes(self) -> int:
        return int(self.smallest.shape[0])

    def curve(self, n: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The estimated FPIR of a gallery of `n` identities at every threshold where it
        changes.

        Returns:
            (values (V,) ascending, rate (V,) the FPIR when accepting scores <= values[v],
            accepted (V,) how many probes have a score <= values[v], saturated (V,) how many
            of those have all K kept scores <= values[v] (counted as accepted outright)).
        """
        p, k = self.smallest.shape
        if p == 0 or k == 0:
            empty = np.empty(0)
            return empty, empty, empty, empty
        values, rows, columns, accepted, saturated = self._ordered
        # A probe's step at its c-th smallest score depends only on its number of other
        # identities n_p, and probes share a few values of it (a calibration set's class
        # sizes): the powers are taken once per distinct n_p, then gathered per score
        # (this runs for every gallery size of a model's table).
        distinct, of_row = np.unique(self.identities, return_inverse=True)
        n_p = np.maximum(distinct.astype(np.float64), 1.0)[:, None]
        c = np.arange(1, k + 1, dtype=np.float64)[None, :]
        below = np.clip(1.0 - (c - 1) / n_p, 0.0, 1.0) ** n
        at = np.clip(1.0 - c / n_p, 0.0, 1.0) ** n
        delta = below - at
        # a probe whose K kept scores are all within t may have more: count it as accepted
        truncated = distinct > k
        delta[truncated, k - 1] = below[truncated, k - 1]
        rate = np.cumsum(delta[of_row.reshape(-1)[rows], columns]) / p
        return values, np.minimum(rate, 1.0), accepted, saturated

    @cached_property
    def _ordered(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """What `curve` needs whatever n: every finite kept score in ascending order, the
        probe (row) and rank (column) of each, and the running counts of probes accepted
        and saturated."""
        k = self.smallest.shape[1]
        rows, columns = np.nonzero(np.isfinite(self.smallest))
        values = self.smallest[rows, columns]
        order = np.argsort(values, kind="stable")
        rows, columns = rows[order], columns[order]
        accepted = np.cumsum(columns == 0)
        saturated = np.cumsum((columns == k - 1) & (self.identities[rows] > k))
        return values[order], rows, columns, accepted, saturated

    def rate_at(self, threshold: float, n: float) -> tuple[float, int]:
        """(estimated FPIR, probes accepted) of a gallery of `n` identities at `threshold`."""
        values, rate, accepted, _ = self.curve(n)
        i = int(np.searchsorted(values, threshold, side="right")) - 1
        return (0.0, 0) if i < 0 else (float(rate[i]), int(accepted[i]))

    def threshold_at(self, target: float, n: float) -> tuple[float, float, int]:
        """The largest threshold whose estimated FPIR for `n` identities is <= `target`.

        Halfway between the last score accepted and the next (as pair thresholds are set,
        `siamese.evaluation.verification.threshold_at_far`); just below the smallest score
        when even that one would exceed the target.

        Returns:
            (threshold, the estimated FPIR there, probes accepted there).
        """
        t, rate, accepted, _ = self.threshold_with_saturation(target, n)
        return t, rate, accepted

    def threshold_with_saturation(
        self, target: float, n: float, curve: Any = None
    ) -> tuple[float, float, int, int]:
        """`threshold_at`, and how many probes there had all K kept scores within it (their
        share of the rate is a bound, not an estimate). `curve`: `curve(n)`, when known."""
        values, rate, accepted, saturated = self.curve(n) if curve is None else curve
        if values.size == 0:
            return math.inf, 0.0, 0, 0
        i = int(np.searchsorted(rate, target, side="right")) - 1
        if i < 0:
            return float(np.nextafter(values[0], -np.inf)), 0.0, 0, 0
        if i + 1 < values.size and values[i + 1] > values[i]:
            t = float((values[i] + values[i + 1]) / 2)
        else:
            t = float(values[i])
        return t, float(rate[i]), int(accepted[i]), int(saturated[i])

    def as_dict(self) -> dict[str, Any]:
        """A JSON form (scores rounded to 6 significant digits, inf as null)."""
        return {
            "smallest": [
                [None if not math.isfinite(v) else float(f"{v:.6g}") for v in row]
                for row in self.smallest.tolist()
            ],
            "identities": [int(v) for v in self.identities],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StrangerScores:
        rows = [[math.inf if v is None else float(v) for v in row] for row in data["smallest"]]
        k = max((len(r) for r in rows), default=0)
        smallest = np.full((len(rows), k), math.inf)
        for i, row in enumerate(rows):
            smallest[i, : len(row)] = row
        return cls(smallest, np.asarray(data["identities"], dtype=np.int64))


def stranger_scores(
    scores: np.ndarray, own: np.ndarray | None, keep: int = SMALLEST_KEPT
) -> StrangerScores:
    """`StrangerScores` of probes from their scores against identities.

    Args:
        scores: (P, I) each probe's score against each identity (inf for none).
        own: (P, I) bool, True where the identity is the probe's own (left out); None: none.
        keep: how many of the smallest to keep.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if own is not None:
        scores = np.where(own, np.inf, scores)
    counts = np.isfinite(scores).sum(axis=1)
    k = min(keep, scores.shape[1])
    if k == 0:
        return StrangerScores(np.empty((scores.shape[0], 0)), counts)
    part = np.partition(scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else scores
    return StrangerScores(np.sort(part, axis=1), counts)


@dataclass(frozen=True)
class PairImpostors:
    """Scores of impostor pairs, sorted: the pooled distribution F, for the independence bound
    1 − (1 − F(t))^N and for its mean and spread."""

    sorted_scores: np.ndarray

    def threshold_at(self, target: float, n: float) -> tuple[float, float, bool]:
        """(threshold, estimated FPIR there (a bound), supported) for `n` identities: the
        pair rate 1 − (1 − target)^(1/n) as a quantile of the impostor scores, supported when
        at least 10 impostor pairs fall within it."""
        m = self.sorted_scores.size
        if m == 0:
            return math.inf, 0.0, False
        far = -math.expm1(math.log1p(-min(target, 1 - 1e-12)) / n)
        k = math.floor(far * m)
        if k == 0:
            return float(np.nextafter(self.sorted_scores[0], -np.inf)), 0.0, False
        t = float(self.sorted_scores[k - 1])
        if k < m and self.sorted_scores[k] > t:
            t = float((t + self.sorted_scores[k]) / 2)
        return t, self.rate_at(t, n), far * m >= 10

    def rate_at(self, threshold: float, n: float) -> float:
        m = self.sorted_scores.size
        if m == 0:
            return 0.0
        f = np.searchsorted(self.sorted_scores, threshold, side="right") / m
        return float(-math.expm1(n * math.log1p(-min(f, 1 - 1e-15))))


@dataclass(frozen=True)
class FpirTable:
    """A model's stranger rates, as model.json stores them: the threshold at each target FPIR
    (`TABLE_TARGETS`) for galleries of each size (`TABLE_SIZES`, identities of one example
    each), from its calibration data.

    Attributes:
        sizes, targets: the grid.
        thresholds: (sizes, targets) the threshold, NaN where the data supports neither method.
        methods: (sizes, targets) "probes" (the per-probe estimate, supported), "pairs" (the
            independence bound, a stricter threshold, used where too few probes support the
            first), or "" (unsupported).
        probes: calibration probes; impostor_pairs: impostor pairs.
        impostor_mean, impostor_std: the mean and spread of impostor pair scores.
        normalised: per kind of normalised score ("ratio", "t-norm":
            `siamese.recognition.score_normalisation`), (sizes, targets) the threshold on it,
            from simulated galleries; NaN where unsupported (fewer than
            `MIN_STRANGERS_ACCEPTED` probes accepted, or a gallery too small for a cohort).
            Empty for a table made before normalised scores.
    """

    sizes: tuple[int, ...]
    targets: tuple[float, ...]
    thresholds: np.ndarray
    methods: list[list[str]]
    probes: int
    impostor_pairs: int
    impostor_mean: float
    impostor_std: float
    normalised: dict[str, np.ndarray] = field(default_factory=dict)

    def normalised_threshold(self, target: float, n: float, kind: str) -> float | None:
        """The threshold on the `kind` normalised score at FPIR `target` for `n` identities
        (interpolated as `threshold`), or None where the table does not support it."""
        grid = self.normalised.get(kind)
        if grid is None:
            return None
        methods = [["probes" if math.isfinite(v) else "" for v in row] for row in grid]
        found = self._interpolate(grid, methods, target, n)
        return None if found is None else found[0]

    def threshold(self, target: float, n: float) -> tuple[float, str] | None:
        """The threshold at FPIR `target` for `n` identities: interpolated in log size and log
        target between supported grid points (None when the grid does not support it).

        Returns:
            (threshold, method: the weaker of the grid points used).
        """
        return self._interpolate(self.thresholds, self.methods, target, n)

    def _interpolate(
        self, grid: np.ndarray, methods: list[list[str]], target: float, n: float
    ) -> tuple[float, str] | None:
        ls = np.log(np.asarray(self.sizes, dtype=np.float64))
        lt = np.log(np.asarray(self.targets, dtype=np.float64))
        x, y = math.log(max(n, 1.0)), math.log(target)
        if y < lt[0] - 1e-9 or y > lt[-1] + 1e-9:
            return None
        i = int(np.clip(np.searchsorted(ls, x, side="right") - 1, 0, len(ls) - 2))
        j = int(np.clip(np.searchsorted(lt, y, side="right") - 1, 0, len(lt) - 2))
        wx = float(np.clip((x - ls[i]) / (ls[i + 1] - ls[i]), 0.0, 1.0))
        wy = float(np.clip((y - lt[j]) / (lt[j + 1] - lt[j]), 0.0, 1.0))
        corners = [(i, j, (1 - wx) * (1 - wy)), (i + 1, j, wx * (1 - wy)),
                   (i, j + 1, (1 - wx) * wy), (i + 1, j + 1, wx * wy)]  # fmt: skip
        used = [(a, b, w) for a, b, w in corners if w > 1e-12]
        if any(not methods[a][b] for a, b, _ in used):
            return None
        value = sum(w * float(grid[a, b]) for a, b, w in used)
        method = "pairs" if any(methods[a][b] == "pairs" for a, b, _ in used) else "probes"
        return value, method

    def rate_at(self, threshold: float, n: float) -> float | None:
        """The estimated FPIR at `threshold` for `n` identities: the target whose threshold
        it is, interpolated (clipped to the grid's targets; None where unsupported)."""
        known = [(f, self.threshold(f, n)) for f in self.targets]
        points = [(f, t[0]) for f, t in known if t is not None]
        if not points:
            return None
        fs = np.log([f for f, _ in points])
        ts = np.asarray([t for _, t in points])
        order = np.argsort(ts)
        return float(np.exp(np.interp(threshold, ts[order], fs[order])))

    def as_dict(self) -> dict[str, Any]:
        return {
            "sizes": list(self.sizes),
            "targets": list(self.targets),
            "thresholds": [
                [None if math.isnan(v) else float(f"{v:.6g}") for v in row]
                for row in self.thresholds.tolist()
            ],
            "methods": self.methods,
            "probes": self.probes,
            "impostor_pairs": self.impostor_pairs,
            "impostor_mean": self.impostor_mean,
            "impostor_std": self.impostor_std,
            "normalised": {
                kind: [
                    [None if math.isnan(v) else float(f"{v:.6g}") for v in row]
                    for row in grid.tolist()
                ]
                for kind, grid in self.normalised.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FpirTable:
        normalised = data.get("normalised") or {}
        return cls(
            sizes=tuple(int(v) for v in data["sizes"]),
            targets=tuple(float(v) for v in data["targets"]),
            thresholds=np.asarray(
                [[math.nan if v is None else float(v) for v in row] for row in data["thresholds"]]
            ),
            methods=[[str(m) for m in row] for row in data["methods"]],
            probes=int(data["probes"]),
            impostor_pairs=int(data["impostor_pairs"]),
            impostor_mean=float(data["impostor_mean"]),
            impostor_std=float(data["impostor_std"]),
            normalised={
                str(kind): np.asarray(
                    [[math.nan if v is None else float(v) for v in row] for row in grid]
                )
                for kind, grid in normalised.items()
            },
        )


def quantile_threshold(scores: np.ndarray, target: float) -> tuple[float, int]:
    """The largest threshold accepting at most the share `target` of `scores` (halfway to the
    next score), and how many it accepts."""
    s = np.sort(scores[np.isfinite(scores)]) if scores.size else scores
    if s.size == 0:
        return math.inf, 0
    accepted = math.floor(target * scores.size)
    if accepted == 0:
        return float(np.nextafter(s[0], -np.inf)), 0
    if accepted >= s.size:
        return float(s[-1]), int(s.size)
    t = float(s[accepted - 1])
    if s[accepted] > t:
        t = float((t + s[accepted]) / 2)
    return t, accepted


def fpir_table(
    strangers: StrangerScores,
    impostors: PairImpostors,
    quantiles: np.ndarray | None = None,
    draws: int = 8,
) -> FpirTable:
    """The table of a calibration: the per-probe estimate where `MIN_STRANGERS_ACCEPTED`
    probes support it, else the independence bound where enough pairs support that; and,
    given each probe's distance `quantiles` (P, Q), the thresholds on each kind of normalised
    score from `draws` simulated galleries per probe and size."""
    from siamese.recognition.score_normalisation import (
        COHORT,
        NORMALISATIONS,
        simulate_normalised_strangers,
    )

    thresholds = np.full((len(TABLE_SIZES), len(TABLE_TARGETS)), math.nan)
    methods = [["" for _ in TABLE_TARGETS] for _ in TABLE_SIZES]
    for a, n in enumerate(TABLE_SIZES):
        curve = strangers.curve(n)
        for b, target in enumerate(TABLE_TARGETS):
            t, _, accepted, saturated = strangers.threshold_with_saturation(target, n, curve)
            # probes with every kept score within t count as accepted outright: a bound,
            # tight when n is large against the scores each probe was scored on; where they
            # are more than a tenth of those accepted, the pair method (exact at n = 1) serves
            if accepted >= MIN_STRANGERS_ACCEPTED and saturated <= 0.1 * accepted:
                thresholds[a, b], methods[a][b] = t, "probes"
                continue
            t, _, supported = impostors.threshold_at(target, n)
            if supported:
                thresholds[a, b], methods[a][b] = t, "pairs"
    normalised: dict[str, np.ndarray] = {}
    if quantiles is not None and strangers.probes > 0:
        for kind in NORMALISATIONS[1:]:
            grid = np.full((len(TABLE_SIZES), len(TABLE_TARGETS)), math.nan)
            for a, n in enumerate(TABLE_SIZES):
                if n < COHORT + 1:
                    continue
                s = simulate_normalised_strangers(
                    strangers.smallest, strangers.identities, quantiles, n, draws, a, kind
                )
                for b, target in enumerate(TABLE_TARGETS):
                    t, accepted = quantile_threshold(s, target)
                    if accepted / draws >= MIN_STRANGERS_ACCEPTED:
                        grid[a, b] = t
            normalised[kind] = grid
    scores = impostors.sorted_scores
    return FpirTable(
        TABLE_SIZES,
        TABLE_TARGETS,
        thresholds,
        methods,
        strangers.probes,
        int(scores.size),
        float(scores.mean()) if scores.size else math.nan,
        float(scores.std()) if scores.size else math.nan,
        normalised,
    )


@dataclass(frozen=True)
class GalleryCalibration:
    """A gallery's calibration on its own people: each enrolled example, with its identity
    left out, is a stranger to the rest (scores in the user's own domain, no extra labels);
    each example of an identity with two or more is a genuine probe of it.

    Attributes:
        generation: the gallery's write counter it was measured at; identities: N then.
        strangers: each probe's smallest scores against the other identities.
        impostor_mean, impostor_std, impostor_pairs: the mean and spread of the
            example-to-example distances between different identities (their number).
        genuine: (G,) each genuine probe's score against its own identity (its other
            examples); genuine_rival: (G,) its best score against any other identity.
        genuine_cohort: (G, ≤ COHORT) each genuine probe's scores against its nearest other
            identities (its cohort, for normalised scores).
    """

    generation: int
    identities: int
    strangers: StrangerScores
    impostor_mean: float
    impostor_std: float
    impostor_pairs: int
    genuine: np.ndarray
    genuine_rival: np.ndarray
    genuine_cohort: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))

    def normalised_strangers(self, kind: str) -> np.ndarray:
        """(P,) each stranger probe's best score normalised (`kind`) against its cohort."""
        from siamese.recognition.score_normalisation import COHORT, normalised_best

        return normalised_best(self.strangers.smallest[:, : COHORT + 1], kind)

    def identification_rate(
        self, threshold: float, normalised_threshold: float | None = None, kind: str = "none"
    ) -> float | None:
        """The share of genuine probes identified at `threshold` (their own identity scores
        best and within it; with `normalised_threshold`, its `kind` normalised score within
        that), or None without genuine probes."""
        from siamese.recognition.score_normalisation import normalised_against

        if self.genuine.size == 0:
            return None
        best = self.genuine < self.genuine_rival
        if normalised_threshold is not None and kind != "none":
            scores = normalised_against(self.genuine, self.genuine_cohort, kind)
            within = scores <= normalised_threshold
        else:
            within = self.genuine <= threshold
        return float((best & within).mean())

    def as_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "identities": self.identities,
            "strangers": self.strangers.as_dict(),
            "impostor_mean": self.impostor_mean,
            "impostor_std": self.impostor_std,
            "impostor_pairs": self.impostor_pairs,
            "genuine": [float(f"{v:.6g}") for v in self.genuine.tolist()],
            "genuine_rival": _finite_list(self.genuine_rival),
            "genuine_cohort": [_finite_list(row) for row in self.genuine_cohort],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GalleryCalibration:
        return cls(
            generation=int(data["generation"]),
            identities=int(data["identities"]),
            strangers=StrangerScores.from_dict(data["strangers"]),
            impostor_mean=float(data["impostor_mean"]),
            impostor_std=float(data["impostor_std"]),
            impostor_pairs=int(data["impostor_pairs"]),
            genuine=np.asarray(data["genuine"], dtype=np.float64),
            genuine_rival=_array(data["genuine_rival"]),
            genuine_cohort=np.asarray(
                [_array(row) for row in data["genuine_cohort"]], dtype=np.float64
            )
            if data.get("genuine_cohort")
            else np.empty((len(data["genuine"]), 0)),
        )


def _finite_list(values: np.ndarray) -> list[float | None]:
    """JSON numbers (6 significant digits), inf as null."""
    return [None if not math.isfinite(v) else float(f"{v:.6g}") for v in values.tolist()]


def _array(values: list[float | None]) -> np.ndarray:
    return np.asarray([math.inf if v is None else v for v in values], dtype=np.float64)


def identities_needed(target: float) -> int:
    """Left-out identities a gallery needs for its own estimate at `target` to be supported."""
    return math.ceil(MIN_STRANGERS_ACCEPTED / target)


__all__ = [
    "DEFAULT_FPIR",
    "MIN_STRANGERS_ACCEPTED",
    "FpirTable",
    "GalleryCalibration",
    "PairImpostors",
    "StrangerScores",
    "fpir_table",
    "identities_needed",
    "stranger_scores",
]
