"""Named augmentation presets and the ``"crop=4,flip,..."`` spec strings that build ``Augment``."""

from __future__ import annotations

from cnnlab.data.augment import Augment
from cnnlab.data.policies import PolicyAugment, build_policy, has_policy_items

# Preset name -> what it enables; "pad" means crop padding of image_size / 8 (4 px at 32x32).
PRESETS: dict[str, str] = {
    "none": "no augmentation",
    "flip": "horizontal flip",
    "crop": "random crop with padding size/8 (for digits: no flip)",
    "crop-flip": "random crop with padding size/8 + horizontal flip (the standard CIFAR recipe)",
    "shift-rotate": "random crop with padding size/8 + rotation up to 10 degrees (digits, MNIST)",
    "rrc-flip": "random resized crop (8-100% area, aspect 3/4-4/3) + horizontal flip "
    "(torchvision's ImageNet recipe; the default when images are stored above the crop size)",
    "strong": "random resized crop (35-100% area) + flip + rotation 10 deg + colour jitter 0.3 "
    "+ cutout size/4",
}

_KEYS = ("crop", "flip", "rotate", "rrc", "jitter", "cutout", "reflect")

# Datasets of characters, where a mirrored image is not a valid sample of the same class.
_NO_FLIP_SOURCES = ("digits", "mnist")


def default_augment_name(source: str) -> str:
    """The preset suited to a data source: no flips for handwritten digits, else crop-flip.

    Example:
        >>> default_augment_name("digits"), default_augment_name("cifar10")
        ('crop', 'crop-flip')
    """
    return "crop" if source in _NO_FLIP_SOURCES else "crop-flip"


def _preset(name: str, size: int) -> Augment:
    pad = max(1, round(size / 8))
    if name == "none":
        return Augment()
    if name == "flip":
        return Augment(flip=True)
    if name == "crop":
        return Augment(crop_padding=pad)
    if name == "crop-flip":
        return Augment(crop_padding=pad, flip=True)
    if name == "shift-rotate":
        return Augment(crop_padding=pad, rotate=10.0)
    if name == "rrc-flip":
        return Augment(resized_crop=(0.08, 1.0), flip=True)
    return Augment(
        resized_crop=(0.35, 1.0), flip=True, rotate=10.0, jitter=0.3, cutout=max(1, size // 4)
    )


def _parse_spec(spec: str) -> Augment:
    kwargs: dict = {}
    for item in spec.split(","):
        key, _, value = item.strip().partition("=")
        if key not in _KEYS:
            raise ValueError(
                f"augment: unknown item {key!r} in {spec!r}; use a preset "
                f"({', '.join(PRESETS)}) or comma-separated items from {', '.join(_KEYS)}, "
                "e.g. 'crop=4,flip,rotate=10,rrc=0.35,jitter=0.3,cutout=8'"
            )
        try:
            if key == "crop":
                kwargs["crop_padding"] = int(value or 4)
            elif key == "flip":
                kwargs["flip"] = True
            elif key == "reflect":
                kwargs["padding_mode"] = "reflect"
            elif key == "rotate":
                kwargs["rotate"] = float(value or 10)
            elif key == "rrc":
                kwargs["resized_crop"] = (float(value or 0.35), 1.0)
            elif key == "jitter":
                kwargs["jitter"] = float(value or 0.3)
            else:
                kwargs["cutout"] = int(value or 8)
        except ValueError:
            raise ValueError(
                f"augment: {key!r} needs a number, got {value!r} in {spec!r}"
            ) from None
    return Augment(**kwargs)


def resolve_augment_name(name: str | None, source: str | None) -> str | None:
    """``"auto"`` -> the preset for ``source`` (:func:`default_augment_name`); others unchanged.

    Example:
        >>> resolve_augment_name("auto", "digits"), resolve_augment_name("flip", "digits")
        ('crop', 'flip')
    """
    if isinstance(name, str) and name.strip().lower() == "auto":
        if source is None:
            raise ValueError(
                "augment 'auto' picks a preset per dataset; pass the data source too "
                f"(source='digits'), or a preset ({', '.join(PRESETS)})"
            )
        return default_augment_name(source)
    return name


def build_augment(
    name_or_spec: str | Augment | None,
    image_size: int | tuple[int, int],
    source: str | None = None,
) -> Augment | PolicyAugment:
    """Build an :class:`Augment` from a preset name or a spec string.

    Presets: ``none``, ``flip``, ``crop``, ``crop-flip`` (standard CIFAR), ``shift-rotate``,
    ``strong`` (see ``PRESETS``), and ``auto``: the preset for the data ``source``
    (:func:`default_augment_name`). A spec lists items, e.g. ``"crop=4,flip,rotate=10,rrc=0.35,
    jitter=0.3,cutout=8,reflect"`` (``rrc`` = random resized crop with that minimum area). The
    per-image policies of :mod:`cnnlab.data.policies` (``ra=N:M``, ``ta``, ``aa=imagenet``,
    ``erase=P``, ``vflip``) follow a preset or the other items: ``"crop-flip,ta,erase=0.25"``.

    Args:
        name_or_spec: preset name, spec string, an ``Augment`` (returned as is) or None (none).
        image_size: image side (or (H, W)); presets scale padding and cutout with it.
        source: the data source, needed for ``auto`` (a training config's ``dataset``).

    Example:
        >>> build_augment("crop-flip", 32)
        Augment(crop_padding=4, padding_mode='constant', flip=True)
        >>> build_augment("auto", 32, source="digits")
        Augment(crop_padding=4, padding_mode='constant')
    """
    if isinstance(name_or_spec, str):
        name_or_spec = resolve_augment_name(name_or_spec, source)
    if isinstance(name_or_spec, (Augment, PolicyAugment)):
        return name_or_spec
    if name_or_spec is None:
        return Augment()
    size = min(image_size) if isinstance(image_size, (tuple, list)) else int(image_size)
    if not isinstance(name_or_spec, str) or not name_or_spec.strip():
        raise ValueError(
            f"augment must be a preset name ({', '.join(PRESETS)}) or a spec string, "
            f"got {name_or_spec!r}"
        )
    name = name_or_spec.strip().lower()
    if has_policy_items(name):  # per-image policies (data/policies.py) after the other items
        rest = ",".join(i for i in name.split(",") if not has_policy_items(i))
        return build_policy(name, build_augment(rest, image_size, source) if rest else None)
    if name in PRESETS:
        return _preset(name, size)
    return _parse_spec(name)
