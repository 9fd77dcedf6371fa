"""Jacobian covariance: how decorrelated the input gradients of different images are."""
from __future__ import annotations

import math

import torch

from ._common import row_correlations, summed_output_input_gradient
from ._registry import ProxyContext, proxy

_K = 1e-5


@proxy("jacov", needs=("data",), bn="train", dtype=torch.float32, higher_is_better=True, cost="jacobian",
       reference="Mellor et al., arXiv 2006.04647 v1 (NASWOT jacob_cov); Abdelfattah et al., ICLR 2021")
def jacov(ctx: ProxyContext) -> float:
    """``-sum_i [log(lambda_i + k) + 1 / (lambda_i + k)]``, k = 1e-5, over the eigenvalues lambda_i of the
    N x N correlation matrix of the rows ``J_n = d(sum_m sum_c f_c(x_m)) / d x_n`` (normalised images).

    As the NASLib / zero-cost-nas ``jacov``: one backward pass of the summed logits of a train-mode float32
    copy; the correlation matrix and ``torch.linalg.eigvalsh`` run in float64, and eigenvalues are
    clipped at 0 (the matrix is positive semi-definite; this only removes rounding noise). When some J_n
    is constant (e.g. a network whose output ignores its input) the correlations are undefined: the
    score is ``-inf`` and the result is flagged ``degenerate`` (the reference returns NaN).
    """
    rows, _ = summed_output_input_gradient(ctx)
    corr = row_correlations(rows)
    if corr is None:
        ctx.flag("degenerate")
        return -math.inf
    eig = torch.linalg.eigvalsh(corr).clamp(min=0.0)
    return float(-(torch.log(eig + _K) + 1.0 / (eig + _K)).sum())
