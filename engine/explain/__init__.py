"""Why did the network say that: attribution maps for one image and any class, and their sanity checks.

Every method takes a `Model`, ``x: (C, H, W)`` float in the model's input range and ``target``
(a class index; default: the predicted class) and returns the map at input resolution first,
then the target it explains (see each function for the rest):

- `gradient`, `gradient_x_input`, `smoothgrad`, `guided_backprop`, `deconvnet`: ``(C, H, W)``,
  signed; `integrated_gradients` also returns its completeness gap; `saliency`: ``(H, W)`` >= 0
  (`saliency_of` reduces any ``(C, H, W)`` map the same way).
- `grad_cam`: ``(H, W)`` in [0, 1] at any layer with feature maps; `guided_grad_cam`: ``(C, H, W)``.
- `occlusion`: ``(H, W)``, the signed drop in the target's probability.
- `model_randomization` and `deletion_curve`: the sanity checks; `rank_correlation` is Spearman's.

The gradient methods explain the target's pre-softmax logit.
"""

from engine.explain.backprop import resolve_target
from engine.explain.cam import grad_cam, guided_grad_cam, last_conv_index, upsample
from engine.explain.gradients import (
    deconvnet,
    gradient,
    gradient_x_input,
    guided_backprop,
    integrated_gradients,
    saliency,
    saliency_of,
    smoothgrad,
)
from engine.explain.occlusion import occlusion
from engine.explain.sanity import (
    DeletionCurve,
    Randomization,
    deletion_curve,
    model_randomization,
    randomized_model,
    rank_correlation,
)

__all__ = [
    "DeletionCurve",
    "Randomization",
    "deconvnet",
    "deletion_curve",
    "grad_cam",
    "gradient",
    "gradient_x_input",
    "guided_backprop",
    "guided_grad_cam",
    "integrated_gradients",
    "last_conv_index",
    "model_randomization",
    "occlusion",
    "randomized_model",
    "rank_correlation",
    "resolve_target",
    "saliency",
    "saliency_of",
    "smoothgrad",
    "upsample",
]
