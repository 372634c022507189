"""Server settings: one frozen dataclass read from the environment by `get_settings()`.

Tests build their own `Settings` (a temporary data directory, tiny built-in datasets) and pass it
to `app.main.create_app`; nothing else reads the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """Everything the server can be told; defaults suit one person on one machine."""

    data_dir: Path = Path("./data")
    pretrained_dir: Path = ROOT / "engine" / "pretrained"
    web_dir: Path = ROOT  # holds templates/ and static/
    max_upload_bytes: int = 10 * MB  # images and JSON bodies
    max_archive_bytes: int = 100 * MB  # dataset zips and checkpoint imports
    max_image_side: int = 4096
    max_cpu_jobs: int = 4  # CPU-bound requests at once, at most (fewer while trainers play; see app.concurrency)
    cpu_wait_s: float = 5.0
    max_in_flight: int = 8  # API requests inside the server at once; more get 503 at once (app.concurrency.AdmissionLimit)
    lock_wait_s: float = 60.0  # longest wait for a model's lock before 503
    max_train_steps: int = 1000  # per POST /train request
    max_parameters: int = 10_000_000  # weights in one model
    max_activation_values: int = 1_000_000  # activation values of one image, all layers together
    max_batch_values: int = 32_000_000  # batch_size x activation values in one training step
    save_every_s: float = 5.0  # live training persists this often (and on pause)
    warm_datasets: bool = True  # generate the built-in datasets in the background at startup
    warm_worker: bool = True  # start one worker process in the background at startup (the first job need not wait)
    # {"shapes": (n_train, n_test)}: smaller built-ins (tests); None keeps the engine's defaults.
    builtin_sizes: dict[str, tuple[int, int]] | None = field(default=None)
    import_root: Path | None = None  # default: DATA_DIR/imports
    # Origins besides the server's own Host that may change state (a reverse proxy's public URL).
    allowed_origins: tuple[str, ...] = ()
    # Host names requests may give besides loopback ones, bind_host and the allowed origins' hosts
    # (a proxy's or the LAN's name); "*" allows any, which is unsafe (DNS rebinding).
    allowed_hosts: tuple[str, ...] = ()
    bind_host: str | None = None  # the address `cnnvis serve --host` listens on (CNNVIS_HOST)
    # Per-request budgets, checked before the work starts (SECURITY.md lists each with its setting).
    max_decoded_bytes: int = 64 * MB  # one image's decoded pixels: width x height x channels x bytes
    max_dataset_bytes: int = 512 * MB  # one imported dataset as stored: images x C x H x W bytes (uint8)
    max_import_seconds: float = 120.0  # CPU time one dataset import may take before it is refused
    # Quotas for the whole data directory (a class server's defaults; 0 turns one off).
    max_models: int = 200
    max_images: int = 1000
    max_datasets: int = 50
    max_data_bytes: int = 8 * 1024 * MB  # everything under DATA_DIR
    image_ttl_s: float = 24 * 3600.0  # uploaded images no model or page has used for this long expire
    # Where live trainings run: None, local worker processes; "auto", a local Ray; else a Ray cluster's
    # address to join (the `ray` extra; app.workers.ray_pool, docs/deploy.md).
    ray: str | None = None
    # Private workspaces for a shared server (app.workspaces): each browser its own models, images and
    # datasets, quotas counted per workspace; the teacher token (CNNVIS_TEACHER_TOKEN) sees every one.
    workspaces: bool = False
    teacher_token: str | None = field(default=None, repr=False)

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def tmp_dir(self) -> Path:
        """The one folder for temporary files (uploads being received, writes being made); emptied at start."""
        return self.data_dir / "tmp"

    @property
    def import_dir(self) -> Path:
        """The one folder whose files ``POST /datasets/import`` may read (no path outside it)."""
        return self.import_root or self.data_dir / "imports"


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None


def _list(name: str) -> tuple[str, ...]:
    """A comma-separated environment variable as its non-empty, stripped entries."""
    return tuple(v.strip() for v in os.environ.get(name, "").split(",") if v.strip())


def get_settings() -> Settings:
    """Settings from ``CNNVIS_*`` environment variables (unset ones keep their defaults)."""
    env = os.environ.get
    defaults = Settings()
    return Settings(
        data_dir=Path(env("CNNVIS_DATA_DIR") or defaults.data_dir),
        pretrained_dir=Path(env("CNNVIS_PRETRAINED_DIR") or defaults.pretrained_dir),
        web_dir=Path(env("CNNVIS_WEB_DIR") or defaults.web_dir),
        max_upload_bytes=_int("CNNVIS_MAX_UPLOAD_BYTES", defaults.max_upload_bytes),
        max_archive_bytes=_int("CNNVIS_MAX_ARCHIVE_BYTES", defaults.max_archive_bytes),
        max_image_side=_int("CNNVIS_MAX_IMAGE_SIDE", defaults.max_image_side),
        max_cpu_jobs=_int("CNNVIS_MAX_CPU_JOBS", defaults.max_cpu_jobs),
        max_in_flight=_int("CNNVIS_MAX_IN_FLIGHT", defaults.max_in_flight),
        warm_datasets=env("CNNVIS_WARM_DATASETS", "1") not in ("0", "false", "no"),
        warm_worker=env("CNNVIS_WARM_WORKER", "1") not in ("0", "false", "no"),
        import_root=Path(env("CNNVIS_IMPORT_DIR")) if env("CNNVIS_IMPORT_DIR") else None,
        allowed_origins=_list("CNNVIS_ALLOWED_ORIGINS"),
        allowed_hosts=_list("CNNVIS_ALLOWED_HOSTS"),
        bind_host=env("CNNVIS_HOST") or None,
        max_decoded_bytes=_int("CNNVIS_MAX_DECODED_BYTES", defaults.max_decoded_bytes),
        max_dataset_bytes=_int("CNNVIS_MAX_DATASET_BYTES", defaults.max_dataset_bytes),
        max_import_seconds=float(_int("CNNVIS_MAX_IMPORT_SECONDS", int(defaults.max_import_seconds))),
        max_models=_int("CNNVIS_MAX_MODELS", defaults.max_models),
        max_images=_int("CNNVIS_MAX_IMAGES", defaults.max_images),
        max_datasets=_int("CNNVIS_MAX_DATASETS", defaults.max_datasets),
        max_data_bytes=_int("CNNVIS_MAX_DATA_BYTES", defaults.max_data_bytes),
        image_ttl_s=float(_int("CNNVIS_IMAGE_TTL_S", int(defaults.image_ttl_s))),
        ray=env("CNNVIS_RAY") or None,
        workspaces=env("CNNVIS_WORKSPACES", "0") in ("1", "true", "yes"),
        teacher_token=env("CNNVIS_TEACHER_TOKEN") or None,
    )
