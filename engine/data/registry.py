"""Built-in datasets by name, generated with their default arguments and cached on disk."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from .dataset import Dataset, DatasetError, load_dataset, save_dataset
from .digits import DIGITS_DESCRIPTION, make_digits
from .shapes import SHAPES_DESCRIPTION, make_shapes

__all__ = ["BUILTIN", "builtin_dataset"]

#: name -> generator called with its defaults (seed 0). Read-only.
BUILTIN: Mapping[str, Callable[..., Dataset]] = MappingProxyType({"shapes": make_shapes, "digits": make_digits})

# The description names the generator version, so a cache from an older generator is redone.
_DESCRIPTIONS: Mapping[str, str] = MappingProxyType({"shapes": SHAPES_DESCRIPTION, "digits": DIGITS_DESCRIPTION})


def builtin_dataset(name: str, cache_dir: str | Path | None = None) -> Dataset:
    """The built-in dataset ``name``, from ``<cache_dir>/<name>.npz`` when a current copy is there.

    Without ``cache_dir`` the dataset is generated every time. A missing, unreadable or
    outdated cache file is (re)generated and written atomically.

    Raises:
        DatasetError: for an unknown name.
    """
    if name not in BUILTIN:
        raise DatasetError(f"unknown built-in dataset {name!r}; choose one of {sorted(BUILTIN)}")
    if cache_dir is None:
        return BUILTIN[name]()
    path = Path(cache_dir) / f"{name}.npz"
    if path.is_file():
        try:
            cached = load_dataset(path)
            if cached.name == name and cached.description == _DESCRIPTIONS[name]:
                return cached
        except DatasetError:
            pass  # damaged cache: generate again below
    ds = BUILTIN[name]()
    save_dataset(ds, path)
    return ds
