"""Transfer learning: start from pretrained weights, replace the head, freeze, fine-tune.

The API the training loop uses (``cnnlab train --pretrained/--freeze/--unfreeze-at/--head-lr/
--backbone-lr/--freeze-bn``)::

    model = cnnlab.models.create("resnet18", num_classes=5)
    report = load_pretrained(model, "torchvision")     # or "runs/X", "x.safetensors", "x.pth"
    print(report.summary())                            # loaded / skipped (head) / adapted
    # report.normalization, report.input_size: ImageNet mean/std and 224 for ImageNet weights
    freeze(model, "backbone")                          # | "none" | "until:layer2"
    freeze_bn_stats(model)                             # optional: BN stays in eval mode
    opt = torch.optim.AdamW(param_groups(model, head_lr=1e-3, backbone_lr=1e-4,
                                         weight_decay=0.05))   # trainable params only
    ...
    if epoch == unfreeze_at:                           # gradual unfreezing
        add_param_groups(opt, model, unfreeze(model), lr=1e-4, weight_decay=0.05,
                         scheduler=sched)

Only trainable parameters ever enter the optimizer, so frozen weights stay bit-identical.
"""

from cnnlab.transfer._head import head_parameter_names, head_prefix
from cnnlab.transfer._sources import (
    IMAGENET_MEAN,
    IMAGENET_SIZE,
    IMAGENET_STD,
    PretrainedInfo,
    imagenet_info,
    pretrained_image_size,
    pretrained_info,
    torchvision_cache_file,
    torchvision_weights,
)
from cnnlab.transfer.adapt import classifier_layer, replace_head
from cnnlab.transfer.freeze import (
    FREEZE_CHOICES,
    freeze,
    freeze_bn_stats,
    trainable_summary,
    unfreeze,
)
from cnnlab.transfer.optim import add_param_groups, param_groups
from cnnlab.transfer.pretrained import PretrainedReport, load_pretrained

__all__ = [
    "FREEZE_CHOICES",
    "IMAGENET_MEAN",
    "IMAGENET_SIZE",
    "IMAGENET_STD",
    "PretrainedInfo",
    "PretrainedReport",
    "add_param_groups",
    "classifier_layer",
    "freeze",
    "freeze_bn_stats",
    "head_parameter_names",
    "head_prefix",
    "imagenet_info",
    "load_pretrained",
    "param_groups",
    "pretrained_image_size",
    "pretrained_info",
    "replace_head",
    "torchvision_cache_file",
    "torchvision_weights",
    "trainable_summary",
    "unfreeze",
]
