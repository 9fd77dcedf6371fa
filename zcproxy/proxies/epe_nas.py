"""EPE-NAS: class-wise correlation of input gradients."""
from __future__ import annotations

import torch

from ._common import row_correlations, summed_output_input_gradient
from ._hooks import check_batch
from ._registry import ProxyContext, proxy

_K = 1e-5


@proxy("epe_nas", needs=("data", "labels"), bn="train", dtype=torch.float32, higher_is_better=True,
       cost="jacobian", reference="Lopes et al., ICANN 2021 (EPE-NAS, arXiv 2102.08099); NASLib epe_nas")
def epe_nas(ctx: ProxyContext) -> float:
    """Per class c present in the batch, ``s_c = sum_ij log(|R^c_ij| + k)`` (k = 1e-5) over the correlation
    matrix R^c of the input-gradient rows ``J_n = d(sum_m sum_c' f_c'(x_m)) / d x_n`` of the images of
    class c. With C <= 100 network outputs the score is ``sum_c |s_c|``; with C > 100 each s_c is first
    divided by the class's image count n_c and the score is ``sum_c sum_c' |s_c - s_c'| / #classes``.

    As the authors' code (via NASLib): same gradient rows as ``jacov`` (train-mode float32 copy), a class
    with one image has R^c = [1] (and, with C > 100, is skipped like the reference's failing ``len``).
    Correlations in float64. When some J_n is constant the correlations are undefined: the score is 0
    (the value of perfectly correlated gradients up to O(k)) and the result is flagged ``degenerate``.
    """
    labels = ctx.y
    if labels is None:
        raise ValueError("epe_nas needs labels; pass batch=(x, y)")
    check_batch(ctx.x, "epe_nas")
    rows, num_outputs = summed_output_input_gradient(ctx)
    scores: list[torch.Tensor] = []
    for c in torch.unique(labels.cpu()).tolist():
        members = rows[(labels == c).to(rows.device)]
        if members.shape[0] == 1:
            if num_outputs > 100:
                continue
            corr = torch.ones(1, 1, dtype=torch.float64)
        else:
            corr = row_correlations(members)
            if corr is None:
                ctx.flag("degenerate")
                return 0.0
        s = torch.log(corr.abs() + _K).sum()
        if num_outputs > 100:
            s = s / corr.shape[0]
        scores.append(s)
    if not scores:
        raise ValueError(f"epe_nas with {num_outputs} (> 100) classes needs at least two images of one class "
                         "in the batch, but every class occurs once; use a larger batch")
    per_class = torch.stack(scores)
    if num_outputs <= 100:
        return float(per_class.abs().sum())
    return float((per_class[:, None] - per_class[None, :]).abs().sum() / per_class.numel())
