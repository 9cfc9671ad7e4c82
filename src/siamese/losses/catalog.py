"""Every loss a run can train, in one place: its name, its module, its options with PML's
defaults, the paper, and which batches feed it.

The config schema (`loss:` and its checks), the objective builder
(`siamese.training.objectives`), `siamese train --help` and the docs all read `LOSSES`; adding
a loss is one module in `siamese.losses` plus one `LossEntry` here. This module imports
nothing (no torch): the config layer reads it before anything heavy is loaded.

A loss's constructor takes its options as keyword arguments named as here, after:

- `kind="pairs"` (pair and triplet losses): nothing else; the module is called as
  `(embeddings (B, D), labels (B,), ref_embeddings=None, ref_labels=None) -> LossOutput`,
  and `metric=` when `uses_metric` (the distance it trains on). These can take a cross-batch
  memory (`loss.memory`).
- `kind="classes"` (class-weight and proxy losses): `(num_classes, embedding_dim, ...)`; labels
  are class indices in [0, num_classes) (the objective maps the data's labels to them).
- `kind="head"` (the pair classifier): `(embedding_dim)`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Literal

LossKind = Literal["pairs", "classes", "head"]
METRICS: tuple[str, ...] = ("euclidean", "sqeuclidean", "cosine")


@dataclass(frozen=True)
class LossOption:
    """One option of a loss: `loss.<name>` in a config.

    `type_` is bool, int, float, str or a tuple of allowed strings; `low`/`high` bound a
    number (`low_open`: strictly above `low`).
    """

    name: str
    type_: Any
    default: Any
    help: str
    low: float | None = None
    low_open: bool = False
    high: float | None = None

    def check(self, value: Any) -> str | None:
        """What is wrong with `value` (a phrase for 'must be …'), or None when it is valid."""
        if isinstance(self.type_, tuple):
            return None if value in self.type_ else "one of " + ", ".join(self.type_)
        if self.type_ not in (int, float):
            return None
        below = self.low is not None and (value < self.low or (self.low_open and value == self.low))
        above = self.high is not None and value > self.high
        return self.range_text if below or above else None

    @property
    def range_text(self) -> str:
        """The valid values, as help shows them ('' when any value of the type goes)."""
        if isinstance(self.type_, tuple):
            return ", ".join(self.type_)
        if self.low is None and self.high is None:
            return ""
        low = "" if self.low is None else ("> " if self.low_open else ">= ") + _number(self.low)
        high = "" if self.high is None else f"<= {_number(self.high)}"
        return " and ".join(t for t in (low, high) if t)


@dataclass(frozen=True)
class LossEntry:
    """A loss as the catalog describes it.

    target: `module:Class` under `siamese.losses`. kind: see the module docstring.
    batches: the `batches.kind` values that can feed it (`pk`: P×K batches, mined online).
    metric: the default `loss.metric` (the distance validation, calibration and the gallery
    use; the loss trains on it when `uses_metric`). lr_factor: the loss's own parameters
    train at `optimizer.lr` × this unless `loss.lr` is set (the papers' proxy learning rates).
    """

    name: str
    target: str
    summary: str
    paper: str
    kind: LossKind
    options: tuple[LossOption, ...] = ()
    batches: tuple[str, ...] = ("pk",)
    metric: str = "cosine"
    uses_metric: bool = False
    lr_factor: float = 1.0
    memory: bool = field(default=False)
    """Whether `loss.memory` (a cross-batch memory of past embeddings) applies."""

    def option(self, name: str) -> LossOption | None:
        return next((o for o in self.options if o.name == name), None)

    @property
    def owns_parameters(self) -> bool:
        return self.kind in ("classes", "head") or any(o.name == "learn_beta" for o in self.options)


def _number(value: float) -> str:
    return f"{value:g}"


def _margin(default: float, help_: str, low: float = 0.0) -> LossOption:
    return LossOption("margin", float, default, help_, low=low)


def _scale(default: float) -> LossOption:
    return LossOption(
        "scale", float, default, "the logits' multiplier s (inverse temperature)", 0.0, True
    )


def _temperature(default: float) -> LossOption:
    return LossOption("temperature", float, default, "the softmax temperature τ", 0.0, True)


LOSSES: tuple[LossEntry, ...] = (
    LossEntry(
        "triplet",
        "triplet:TripletLoss",
        "max(d(a, p) − d(a, n) + margin, 0) over mined triplets of the batch",
        "Schroff, Kalenichenko and Philbin, FaceNet, CVPR 2015; Hermans et al. 2017 (batch-hard)",
        "pairs",
        (
            _margin(0.2, "d(a, n) must exceed d(a, p) by this, in units of the distance"),
            LossOption(
                "mining",
                ("all", "semihard", "hard", "random"),
                "semihard",
                "which triplets of a P×K batch train (all: batch-all; hard: batch-hard)",
            ),
            LossOption("soft", bool, False, "softplus(d_ap − d_an) instead of the hinge"),
        ),
        batches=("pk", "triplets"),
        metric="euclidean",
        uses_metric=True,
        memory=True,
    ),
    LossEntry(
        "contrastive",
        "contrastive:ContrastiveLoss",
        "pull genuine pairs within pos_margin, push impostors beyond margin (every pair)",
        "Hadsell, Chopra and LeCun, CVPR 2006",
        "pairs",
        (
            _margin(1.0, "impostor pairs closer than this are pushed apart"),
            LossOption("pos_margin", float, 0.0, "genuine pairs closer than this cost nothing", 0),
        ),
        batches=("pk", "pairs"),
        metric="euclidean",
        uses_metric=True,
        memory=True,
    ),
    LossEntry(
        "pair_classifier",
        "pair_classifier:PairClassifierLoss",
        "a logistic unit on |f(a) − f(b)|, binary cross-entropy (Koch et al.'s head)",
        "Koch, Zemel and Salakhutdinov, ICML deep learning workshop 2015",
        "head",
        batches=("pk", "pairs"),
        metric="euclidean",
    ),
    LossEntry(
        "arcface",
        "arcface:ArcFaceLoss",
        "softmax over class weights with an additive angular margin cos(θ + m)",
        "Deng et al., ArcFace, CVPR 2019",
        "classes",
        (_margin(28.6, "the angular margin m, in degrees"), _scale(64.0)),
    ),
    LossEntry(
        "subcenter_arcface",
        "subcenter_arcface:SubCenterArcFaceLoss",
        "ArcFace with K sub-centres per class (robust to noisy labels)",
        "Deng et al., Sub-center ArcFace, ECCV 2020",
        "classes",
        (
            _margin(28.6, "the angular margin m, in degrees"),
            _scale(64.0),
            LossOption("centres", int, 3, "sub-centres per class K", 1),
        ),
    ),
    LossEntry(
        "cosface",
        "cosface:CosFaceLoss",
        "softmax over class weights with an additive cosine margin cos θ − m",
        "Wang et al., CosFace, CVPR 2018",
        "classes",
        (_margin(0.35, "the cosine margin m"), _scale(64.0)),
    ),
    LossEntry(
        "normalized_softmax",
        "normalized_softmax:NormalizedSoftmaxLoss",
        "softmax over cosines to normalised class weights, at a temperature",
        "Zhai and Wu, Classification is a Strong Baseline for Deep Metric Learning, BMVC 2019",
        "classes",
        (_temperature(0.05),),
    ),
    LossEntry(
        "proxy_anchor",
        "proxy_anchor:ProxyAnchorLoss",
        "each class proxy as an anchor, pulling its class and pushing the rest (log-sum-exp)",
        "Kim et al., Proxy Anchor Loss for Deep Metric Learning, CVPR 2020",
        "classes",
        (
            _margin(0.1, "the cosine margin δ"),
            LossOption("alpha", float, 32.0, "the scale α", 0.0, True),
        ),
        lr_factor=100.0,
    ),
    LossEntry(
        "proxy_nca",
        "proxy_nca:ProxyNCALoss",
        "softmax over negative squared distances to normalised class proxies",
        "Movshovitz-Attias et al., No Fuss Distance Metric Learning using Proxies, ICCV 2017",
        "classes",
        (_scale(1.0),),
        lr_factor=100.0,
    ),
    LossEntry(
        "multi_similarity",
        "multi_similarity:MultiSimilarityLoss",
        "pair weighting by self and relative similarity, with its pair miner",
        "Wang et al., Multi-Similarity Loss with General Pair Weighting, CVPR 2019",
        "pairs",
        (
            LossOption("alpha", float, 2.0, "the positive pairs' scale α", 0.0, True),
            LossOption("beta", float, 50.0, "the negative pairs' scale β", 0.0, True),
            LossOption("base", float, 0.5, "the similarity offset λ", -1.0, False, 1.0),
            LossOption("miner", bool, True, "mine informative pairs first (the paper's miner)"),
            LossOption("epsilon", float, 0.1, "the miner's margin ε", 0.0),
        ),
        memory=True,
    ),
    LossEntry(
        "circle",
        "circle:CircleLoss",
        "pairs re-weighted by how far each is from its optimum, one margin m",
        "Sun et al., Circle Loss, CVPR 2020",
        "pairs",
        (
            _margin(0.4, "the relaxation margin m", 0.0),
            LossOption("gamma", float, 80.0, "the scale γ", 0.0, True),
        ),
        memory=True,
    ),
    LossEntry(
        "lifted_structure",
        "lifted_structure:LiftedStructureLoss",
        "log-sum-exp of positive distances and of negative margins (generalised)",
        "Oh Song et al. CVPR 2016, generalised as in Hermans et al. 2017",
        "pairs",
        (
            _margin(1.0, "negatives closer than this cost"),
            LossOption("pos_margin", float, 0.0, "positives farther than this cost", 0),
        ),
        metric="euclidean",
        uses_metric=True,
        memory=True,
    ),
    LossEntry(
        "margin_loss",
        "margin_loss:MarginLoss",
        "positives within β − margin, negatives beyond β + margin, β learnt",
        "Wu et al., Sampling Matters in Deep Embedding Learning, ICCV 2017",
        "pairs",
        (
            _margin(0.2, "the half-width of the band around β"),
            LossOption("beta", float, 1.2, "the boundary β's initial value", 0.0),
            LossOption("learn_beta", bool, True, "learn β with the model"),
            LossOption("nu", float, 0.0, "the L1 penalty on β", 0.0),
        ),
        metric="euclidean",
        uses_metric=True,
        memory=True,
    ),
    LossEntry(
        "ntxent",
        "ntxent:NTXentLoss",
        "InfoNCE: each positive against the anchor's negatives, at a temperature",
        "Chen et al., SimCLR, ICML 2020 (Sohn, NeurIPS 2016; van den Oord et al. 2018)",
        "pairs",
        (_temperature(0.07),),
        memory=True,
    ),
    LossEntry(
        "supcon",
        "supcon:SupConLoss",
        "supervised contrastive: every positive of an anchor against all its others",
        "Khosla et al., Supervised Contrastive Learning, NeurIPS 2020",
        "pairs",
        (_temperature(0.1),),
        memory=True,
    ),
)
"""Every loss, in the order help lists them."""

COMMON_OPTIONS: dict[str, str] = {
    "name": "the loss (see the list of losses)",
    "metric": "the distance between embeddings: the one the loss trains on where it takes one, "
    "and the one validation, calibration and the gallery use",
    "lr": "the learning rate of the loss's own parameters (class weights, proxies, β); null: "
    "optimizer.lr × the loss's factor (100 for the proxy losses, as their papers train them)",
    "memory": "a cross-batch memory (Wang et al., XBM, CVPR 2020): the newest this many "
    "embeddings of earlier batches join each batch's references; 0: none",
}

MEMORY_OPTION = LossOption("memory", int, 0, COMMON_OPTIONS["memory"], 0)


def loss_names() -> tuple[str, ...]:
    return tuple(entry.name for entry in LOSSES)


def loss_entry(name: str) -> LossEntry:
    """The catalog entry of `name`.

    Raises:
        KeyError: with the valid names and the nearest one.
    """
    for entry in LOSSES:
        if entry.name == name:
            return entry
    near = difflib.get_close_matches(name, loss_names(), n=1, cutoff=0.5)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise KeyError(f"unknown loss {name!r}: choose one of {', '.join(loss_names())}{hint}")


def option_types() -> dict[str, Any]:
    """Every loss option's name → its type, over all losses (an option name means one type)."""
    types: dict[str, Any] = {}
    for entry in LOSSES:
        for option in (*entry.options, MEMORY_OPTION):
            types.setdefault(option.name, option.type_)
    return types


def options_of(entry: LossEntry) -> tuple[LossOption, ...]:
    """The loss's own options, and `memory` where it applies."""
    return (*entry.options, MEMORY_OPTION) if entry.memory else entry.options


def markdown_table() -> str:
    """The catalog as README's table: each loss's config name, what it does, its options with
    defaults, the batches that feed it and the paper."""
    rows = [
        "| `loss.name` | what it does | options (defaults) | batches | paper |",
        "|---|---|---|---|---|",
    ]
    for entry in LOSSES:
        options = ", ".join(f"`{o.name}` {_show(o.default)}" for o in options_of(entry))
        if entry.owns_parameters:
            extra = f"own parameters at lr × {_number(entry.lr_factor)}"
            options = f"{options}; {extra}" if options else extra
        rows.append(
            f"| `{entry.name}` | {entry.summary} | {options or '—'} | "
            f"{', '.join(entry.batches)} | {entry.paper} |"
        )
    return "\n".join(rows)


def _show(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else f"{value}"


__all__ = [
    "COMMON_OPTIONS",
    "LOSSES",
    "MEMORY_OPTION",
    "METRICS",
    "LossEntry",
    "LossOption",
    "loss_entry",
    "loss_names",
    "markdown_table",
    "option_types",
    "options_of",
]
