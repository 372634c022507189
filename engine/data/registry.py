"""Built-in datasets by name, generated with their default arguments and cached on disk."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from .dataset import Dataset, DatasetError, dataset_info, load_dataset, open_dataset, store_dataset
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
    """The built-in dataset ``name``, from the folder ``<cache_dir>/<name>/`` when a current copy is there
    (opened memory-mapped, see :func:`~engine.data.dataset.open_dataset`).

    Without ``cache_dir`` the dataset is generated every time. A current ``<name>.npz`` from an older
    version is moved to the folder format (and removed); a missing, unreadable or outdated cache is
    (re)generated and written atomically.

    Raises:
        DatasetError: for an unknown name.
    """
    if name not in BUILTIN_INFO:
        raise DatasetError(f"unknown built-in dataset {name!r}; choose one of {sorted(BUILTIN_INFO)}")
    if cache_dir is None:
        return BUILTIN_INFO[name].make()
    folder, legacy = Path(cache_dir) / name, Path(cache_dir) / f"{name}.npz"
    current = lambda info: info["name"] == name and info["description"] == BUILTIN_INFO[name].description  # noqa: E731
    try:
        if folder.is_dir() and current(dataset_info(folder)):
            return open_dataset(folder)
    except DatasetError:
        pass  # damaged cache: generate again below
    ds = None
    if legacy.is_file():
        try:
            old = load_dataset(legacy)
            ds = old if current({"name": old.name, "description": old.description}) else None
        except DatasetError:
            pass
    ds = ds or BUILTIN_INFO[name].make()
    store_dataset(ds, folder)
    legacy.unlink(missing_ok=True)
    return open_dataset(folder)
