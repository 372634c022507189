"""Built-in datasets by name, generated with their default arguments and cached on disk."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from .dataset import Dataset, DatasetError, load_dataset, save_dataset
from .digits import DIGIT_CLASSES, DIGITS_DESCRIPTION, make_digits
from .shapes import SHAPE_CLASSES, SHAPES_DESCRIPTION, make_shapes

__all__ = ["BUILTIN", "BUILTIN_INFO", "BuiltinInfo", "builtin_dataset"]


@dataclass(frozen=True)
class BuiltinInfo:
    """What is known of a built-in before it is generated (a server lists it before making it).

    ``description`` names the generator version, so a cache from an older generator is redone.
    """

    input_shape: tuple[int, int, int]
    classes: tuple[str, ...]
    description: str
    make: Callable[..., Dataset]


#: name -> facts and generator (called with its defaults, seed 0). Read-only.
BUILTIN_INFO: Mapping[str, BuiltinInfo] = MappingProxyType({
    "shapes": BuiltinInfo((3, 64, 64), tuple(SHAPE_CLASSES), SHAPES_DESCRIPTION, make_shapes),
    "digits": BuiltinInfo((1, 28, 28), tuple(DIGIT_CLASSES), DIGITS_DESCRIPTION, make_digits),
})  # fmt: skip
#: name -> generator. Read-only.
BUILTIN: Mapping[str, Callable[..., Dataset]] = MappingProxyType({k: v.make for k, v in BUILTIN_INFO.items()})


def builtin_dataset(name: str, cache_dir: str | Path | None = None) -> Dataset:
    """The built-in dataset ``name``, from ``<cache_dir>/<name>.npz`` when a current copy is there.

    Without ``cache_dir`` the dataset is generated every time. A missing, unreadable or
    outdated cache file is (re)generated and written atomically.

    Raises:
        DatasetError: for an unknown name.
    """
    if name not in BUILTIN_INFO:
        raise DatasetError(f"unknown built-in dataset {name!r}; choose one of {sorted(BUILTIN_INFO)}")
    if cache_dir is None:
        return BUILTIN_INFO[name].make()
    path = Path(cache_dir) / f"{name}.npz"
    if path.is_file():
        try:
            cached = load_dataset(path)
            if cached.name == name and cached.description == BUILTIN_INFO[name].description:
                return cached
        except DatasetError:
            pass  # damaged cache: generate again below
    ds = BUILTIN_INFO[name].make()
    save_dataset(ds, path)
    return ds
