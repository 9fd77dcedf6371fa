"""GradSign: agreement of the per-sample gradient signs (Zhang & Jia, ICLR 2022)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._hooks import check_batch, weighted_layers
from ._registry import ProxyContext, proxy
from ._reinit import rows_identical


@proxy("gradsign", needs=("data", "labels", "loss"), bn="train", dtype=torch.float32, higher_is_better=True,
       cost="backward",
       reference="Zhang & Jia, ICLR 2022 (GradSign), cmu-catalyst/GradSign zero-cost-nas-code "
                 "foresight/pruners/measures/grad_conflict.py")
def gradsign(ctx: ProxyContext) -> float:
    """``GradSign = sum_k | sum_i sign(g_ik) |``, g_i = d CE(f(x_i), y_i) / d theta for each image i alone,
    k running over every entry of every Conv2d / Linear weight (biases and BatchNorm parameters excluded).

    As the reference measure (``grad_conflict``, registered with ``bn=True``; its NAS-Bench-201 Spearman
    results are the summed variant): a train-mode float32 copy, one forward and backward pass per image
    with a batch of one, so BatchNorm normalises each image by its own statistics; sign(0) = 0, and
    weights the loss does not reach count 0. The whole proxy batch is used (the reference used 128 images;
    pass ``batch_size=128`` to match). The NASWOT-code variant of the reference takes the mean over k
    instead of the sum, which divides by the number of weights and changes the ranking; we follow the sum,
    the variant behind the reference's NAS-Bench-201 results (its ``201_results_batch_128/sum``). A value of 0 (no weight has a gradient) or a network whose logits are
    equal for every image is flagged ``degenerate``. BatchNorm layers whose per-image input has a single
    value per channel cannot run with a batch of one and raise, as in the reference.
    """
    x = check_batch(ctx.x, "gradsign")
    model = ctx.model_copy(bn="train", dtype=torch.float32)
    weights = [m.weight for _, m in weighted_layers(model)]
    if not weights:
        raise ValueError("gradsign needs at least one Conv2d or Linear layer; the model has none")
    sign_sums = [torch.zeros_like(w, dtype=torch.float64) for w in weights]
    outputs = []
    for i in range(x.shape[0]):
        out = model(x[i:i + 1])
        outputs.append(out.detach())
        grads = torch.autograd.grad(F.cross_entropy(out, ctx.y[i:i + 1]), weights, allow_unused=True)
        for total, g in zip(sign_sums, grads):
            if g is not None:
                total += torch.sign(g)
    value = float(sum(total.abs().sum() for total in sign_sums))
    if value == 0.0 or rows_identical(torch.cat(outputs)):
        ctx.flag("degenerate")
    return value
