"""What a training epoch draws: sampling weights that balance sources and take sharpness away as a shortcut, and the
share of draws each source gets under them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image
from rich.console import Console
from rich.progress import track
from sklearn.metrics import roc_auc_score

from detecteur.config import AUTHENTIC, SYNTHETIC, TrainConfig
from detecteur.inputs.preprocess import image_to_unit_tensor, laplacian_map
from detecteur.training.data import ImageRecord, open_image

console = Console(stderr=True)


def sharpness(image: Image.Image) -> float:
    """log variance of the Laplacian map: how much fine detail an image holds (blur and upscaling lower it)."""
    laplacian = laplacian_map(image_to_unit_tensor(image).unsqueeze(0))
    return float(np.log(laplacian.var().item() + 1e-12))


def sharpness_balancing_weights(
    labels: Sequence[int],
    sharpness_values: Sequence[float],
    bins: int = 10,
    base_weights: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Sampling weights under which sharpness says nothing about the label.

    Sources differ in how sharp their faces are (upscaled web photos vs. crisp generator output), so
    sharpness alone separates real from fake — a shortcut, not a forgery trace. Within each sharpness
    decile both classes get the same total weight (half the decile's share), so a classifier on
    sharpness is at chance on the training distribution. A decile holding one class only keeps its
    images at their plain weight: nothing to balance against. `base_weights` (e.g. from
    `source_balancing_weights`) are kept in proportion within each decile and class.
    """
    label_array = np.asarray(labels)
    values = np.asarray(sharpness_values, dtype=np.float64)
    base = np.ones(len(values)) if base_weights is None else np.asarray(base_weights, dtype=np.float64)
    edges = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    bin_of = np.searchsorted(edges, values, side="right")
    weights = base.copy()
    for b in range(bins):
        in_bin = bin_of == b
        class_totals = [float(base[in_bin & (label_array == c)].sum()) for c in (AUTHENTIC, SYNTHETIC)]
        if min(class_totals) == 0:
            continue
        for c, total in zip((AUTHENTIC, SYNTHETIC), class_totals, strict=True):
            members = in_bin & (label_array == c)
            weights[members] = base[members] * sum(class_totals) / (2 * total)
    normalised: np.ndarray = weights / weights.mean()
    return normalised


def source_balancing_weights(
    records: Sequence[ImageRecord], source_shares: Mapping[str, float] | None = None
) -> np.ndarray:
    """Sampling weights that give every (source, class) group the same share of draws, whatever its size: a
    small source that carries a hard pairing (StyleGAN vs FFHQ) is then seen as often as a large easy one. A source
    named in `source_shares` gets that many shares for each of its groups instead of one."""
    group_sizes = Counter((r.source, r.label) for r in records)
    shares = source_shares or {}
    weights = np.array([shares.get(r.source, 1.0) / group_sizes[(r.source, r.label)] for r in records])
    normalised: np.ndarray = weights / weights.mean()
    return normalised


def look_balancing_weights(
    records: Sequence[ImageRecord], base_weights: Sequence[float] | np.ndarray, look_alike_reals: Mapping[str, str]
) -> np.ndarray:
    """Sampling weights under which a real source's look (framing, size, JPEG history) says nothing about the label.

    Several fake sources share one real source's look: StyleGAN, StyleGAN2 and inswapper faces are all FFHQ-aligned
    256 px crops. Balanced by source alone, that look is drawn three times as a fake for once as a real, and the
    model learns "FFHQ framing = fake" (43 % of FFHQ reals flagged by `generalise-v1`). Here the reals of each source
    are scaled up to the total weight of the fakes sharing their look — the source's own fakes and those of every
    fake source `look_alike_reals` maps to it. Real sources no fake shares a look with keep their weight.
    """
    base = np.asarray(base_weights, dtype=np.float64)
    looks = np.array([look_of(r, look_alike_reals) for r in records])
    is_real = np.array([r.label == AUTHENTIC for r in records])
    weights = base.copy()
    for look in set(looks[is_real]):
        reals = is_real & (looks == look)
        fake_total = float(base[~is_real & (looks == look)].sum())
        if fake_total > 0:
            weights[reals] = base[reals] * fake_total / float(base[reals].sum())
    normalised: np.ndarray = weights / weights.mean()
    return normalised


def look_of(record: ImageRecord, look_alike_reals: Mapping[str, str]) -> str:
    """The real source whose look a record has: its own for reals and for a source's own fakes, the mapped one for
    a fake source `look_alike_reals` names."""
    if record.label == AUTHENTIC:
        return record.source
    return look_alike_reals.get(record.source, record.source)


def reals_without_look_alike_fakes(records: Sequence[ImageRecord], look_alike_reals: Mapping[str, str]) -> set[str]:
    """The real sources whose look no fake among `records` shares: for them, the look alone says "real"."""
    real_looks = {r.source for r in records if r.label == AUTHENTIC}
    fake_looks = {look_of(r, look_alike_reals) for r in records if r.label == SYNTHETIC}
    return real_looks - fake_looks


def sampling_weights(
    records: Sequence[ImageRecord],
    sharpness_values: Sequence[float],
    balance_sources: bool,
    balance_sharpness: bool,
    look_alike_reals: Mapping[str, str] | None = None,
    source_shares: Mapping[str, float] | None = None,
) -> np.ndarray:
    """A recipe's training sampling weights: source balancing first (with `source_shares`), then the looks balanced
    (if `look_alike_reals` is given), then sharpness balancing on top."""
    weights = source_balancing_weights(records, source_shares) if balance_sources else np.ones(len(records))
    if look_alike_reals:
        weights = look_balancing_weights(records, weights, look_alike_reals)
    if balance_sharpness:
        weights = sharpness_balancing_weights([r.label for r in records], sharpness_values, base_weights=weights)
    return weights


def draw_shares(records: Sequence[ImageRecord], weights: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Share of an epoch's draws that goes to each `source/class` group under these sampling weights."""
    totals: dict[str, float] = {}
    for record, weight in zip(records, weights, strict=True):
        group = f"{record.source}/{'fake' if record.label == SYNTHETIC else 'real'}"
        totals[group] = totals.get(group, 0.0) + float(weight)
    whole = sum(totals.values())
    return {group: round(total / whole, 4) for group, total in sorted(totals.items())}


def recipe_sampling_weights(records: Sequence[ImageRecord], config: TrainConfig) -> tuple[list[float], dict[str, Any]]:
    """The recipe's sampling weights (source and/or sharpness balancing), and what they do: the share of draws
    per source and class, and the ROC AUC of sharpness alone as a real/fake score, before and after weighting
    (0.5 = no information). Fine-tuning draws by them; the frozen probe weighs its views by them."""
    labels = [r.label for r in records]
    values = [sharpness(open_image(r.path)) for r in track(records, description="measuring sharpness", console=console)]
    weights = sampling_weights(
        records, values, config.balance_sources, config.balance_sharpness, config.look_alike_reals, config.source_shares
    )
    proof = {
        "sharpness_auc_unweighted": float(roc_auc_score(labels, values)),
        "sharpness_auc_weighted": float(roc_auc_score(labels, values, sample_weight=weights)),
        "draw_shares": draw_shares(records, weights),
    }
    console.print(
        f"sharpness as a real/fake score: AUC {proof['sharpness_auc_unweighted']:.3f} on the training images, "
        f"{proof['sharpness_auc_weighted']:.3f} as sampled"
    )
    return weights.tolist(), proof
