"""What the server keeps, side by side: models (`models`) with their training history (`history`), uploaded
images (`images`), datasets (`datasets`).

Each store is made once in the lifespan and lives on ``app.state.cnnvis`` (see `app.deps.AppState`).
"""

from app.stores.datasets import DatasetStore
from app.stores.history import History
from app.stores.images import ImageStore
from app.stores.models import ModelRecord, ModelStore

__all__ = ["DatasetStore", "History", "ImageStore", "ModelRecord", "ModelStore"]
