"""Datasets for the engine: built-in generators, real-format readers, your own folders,
safe image decoding and augmentation. Pure NumPy + Pillow; nothing here touches the web."""

from .archive import ArchiveError, check_zip
from .augment import AugmentConfig, augment_batch
from .cifar import CIFAR10_CLASSES, load_cifar10
from .dataset import Dataset, DatasetError, load_dataset, save_dataset, to_float
from .digits import make_digits
from .download import download_dataset
from .folder import FolderReport, load_image_folder
from .idx import FASHION_CLASSES, load_mnist, read_idx
from .images import (
    ALLOWED_FORMATS,
    ImageError,
    array_to_png,
    open_image,
    preprocess,
    to_mode,
    to_uint8_chw,
)
from .registry import BUILTIN, builtin_dataset
from .shapes import SHAPE_CLASSES, make_shapes

__all__ = [
    "ALLOWED_FORMATS",
    "BUILTIN",
    "CIFAR10_CLASSES",
    "FASHION_CLASSES",
    "SHAPE_CLASSES",
    "ArchiveError",
    "AugmentConfig",
    "Dataset",
    "DatasetError",
    "FolderReport",
    "ImageError",
    "array_to_png",
    "augment_batch",
    "builtin_dataset",
    "check_zip",
    "download_dataset",
    "load_cifar10",
    "load_dataset",
    "load_image_folder",
    "load_mnist",
    "make_digits",
    "make_shapes",
    "open_image",
    "preprocess",
    "read_idx",
    "save_dataset",
    "to_float",
    "to_mode",
    "to_uint8_chw",
]
