"""Request bodies (Pydantic, validated at the edge: unknown keys, NaN and infinity are 422) and the
JSON shape of a model. Model specs stay plain objects here and are validated by `engine.specs.parse_spec`,
whose errors name the layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from app.stores import ModelRecord

MAX_SEED = 2**32 - 1
MAX_INT = 2**53 - 1  # the page's numbers are JavaScript doubles: larger integers are not exact there
LayerIndex = Annotated[int, Field(ge=0, le=10_000)]
Split = Literal["train", "test"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)


class Sample(Strict):
    """An image of the model's dataset."""

    split: Split = "test"
    index: int = Field(ge=0, le=10**9)


class InputRef(Strict):
    """Exactly one of ``image_id`` (an uploaded image) or ``sample`` (a dataset image)."""

    image_id: str | None = Field(None, max_length=64)
    sample: Sample | None = None
    fit: Literal["crop", "pad"] = Field("crop", description="an uploaded image whose aspect ratio differs from the "
                                        "model's input: crop its centre, or pad (letterbox on black); samples ignore it")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.image_id is None) == (self.sample is None):
            raise ValueError("give exactly one of image_id or sample")
        return self


class ForwardRequest(InputRef):
    pass


ExplainMethod = Literal["gradient", "saliency", "smoothgrad", "gradient_x_input", "integrated_gradients",
                        "guided_backprop", "deconvnet", "grad_cam", "guided_grad_cam", "occlusion"]
ExplainCheck = Literal["randomization", "deletion"]


class ExplainRequest(InputRef):
    """One attribution map for one image and one class; each field is read only by the methods it names."""

    method: ExplainMethod = "saliency"
    target: int | None = Field(None, ge=0, le=100_000, description="class to explain; default the predicted one")
    layer: int | None = Field(None, ge=0, le=10_000, description="Grad-CAM's layer (any with feature maps); default the last")
    patch: int = Field(8, ge=1, le=64, description="occlusion: the side of the grey square")
    stride: int = Field(4, ge=1, le=64, description="occlusion: pixels between two placements")
    samples: int = Field(25, ge=1, le=50, description="SmoothGrad: noisy copies averaged")
    sigma: float = Field(0.15, ge=0.0, le=1.0, description="SmoothGrad: noise level as a fraction of the input's range")
    steps: int = Field(32, ge=1, le=128, description="integrated gradients: steps from the black baseline to the image")
    seed: int = Field(1, ge=0, le=MAX_SEED, description="SmoothGrad's noise and the randomization check's fresh weights")
    checks: list[ExplainCheck] = Field(default_factory=list, max_length=2,
                                       description="also run these: the model-randomization check, the deletion curve")


class GradientsRequest(InputRef):
    label: int | None = Field(None, ge=0, le=100_000, description="the class the loss is taken against; "
                              "default the sample's label (required for an uploaded image)")


class LearnConvRequest(InputRef):
    """One convolution at one output row (and one column, or all of the row), for the Learn mode."""

    layer: int = Field(ge=0, le=10_000, description="a conv2d layer")
    filter: int = Field(0, ge=0, le=100_000, description="which filter (output map)")
    row: int = Field(0, ge=0, le=100_000, description="output row")
    col: int | None = Field(None, ge=0, le=100_000, description="output column; default every column of the row")


class LearnDropoutRequest(InputRef):
    """Dropout in training mode on one image's maps: a dropout layer of the model, or one placed after any layer."""

    layer: int = Field(ge=0, le=10_000, description="a dropout layer (its own rate), or any layer (dropout on its output)")
    rate: float = Field(0.5, ge=0.0, le=0.95, description="used when the layer is not a dropout layer")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seeds the random mask")


class LearnLrRequest(Strict):
    """Copies of the model trained side by side on the same batches, one per learning rate."""

    steps: int = Field(40, ge=1, le=60, description="steps per copy")
    rates: list[float] | None = Field(None, min_length=1, max_length=4,
                                      description="learning rates; default the model's own /10, x1 and x10")


class LearnLocalizeRequest(InputRef):
    """Grad-CAM's map for a class, and the box around its peak's spot: the cells joined to the peak
    through cells at least ``threshold`` of it."""

    target: int | None = Field(None, ge=0, le=100_000, description="class; default the predicted one")
    threshold: float = Field(0.5, gt=0.0, le=1.0, description="share of the map's peak a cell must reach to join the peak's spot")


class HyperparameterChanges(Strict):
    """Omitted fields keep the model's current values; ranges are checked by the engine (422 says them),
    integers first kept below ``MAX_INT`` here."""

    batch_size: int | None = Field(None, le=MAX_INT)
    learning_rate: float | None = None
    optimizer: Literal["sgd", "adam"] | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    weight_decay: float | None = None
    loss: Literal["cross_entropy", "mse"] | None = None
    augment: bool | None = None

    def changes(self) -> dict[str, Any]:
        names = HyperparameterChanges.model_fields
        return {k: v for k, v in self.model_dump(exclude_none=True).items() if k in names}


class TrainRequest(HyperparameterChanges):
    steps: int = Field(1, ge=1, le=100_000)


class EvaluateRequest(Strict):
    split: Split = "test"
    max_examples: int | None = Field(None, ge=1, le=10**7)


class CreateModel(Strict):
    """Exactly one of ``preset``, ``spec`` or ``from`` (the id of a model to copy)."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["preset"]}, {"required": ["spec"]},
                                                           {"required": ["from"]}]})

    preset: str | None = Field(None, max_length=64)
    spec: dict[str, Any] | None = None
    from_: str | None = Field(None, alias="from", max_length=64)
    dataset: str | None = Field(None, max_length=64)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    name: str | None = Field(None, min_length=1, max_length=100)
    loss: Literal["cross_entropy", "mse"] | None = None
    transfer: bool = Field(False, description="with from and dataset: keep the source's layers up to its last one with "
                           "feature maps (weights frozen), and a new dense head sized for the dataset's classes")

    @model_validator(mode="after")
    def _one_source(self):
        if sum(v is not None for v in (self.preset, self.spec, self.from_)) != 1:
            raise ValueError("give exactly one of preset, spec or from")
        if self.transfer and (self.from_ is None or self.dataset is None):
            raise ValueError("transfer needs from (the model to learn from) and dataset (the new data)")
        return self


class PatchModel(Strict):
    name: str | None = Field(None, min_length=1, max_length=100)
    training: HyperparameterChanges | None = None
    frozen: list[LayerIndex] | None = Field(None, max_length=1024, description="indices of the layers to freeze; [] unfreezes all")
    dataset: str | None = Field(None, max_length=64, description="another dataset with the same input shape and classes count")


class ResetRequest(Strict):
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="default: a fresh random seed")


class SpecRequest(Strict):
    spec: dict[str, Any]


class ImportDataset(Strict):
    """Files already on the server, under its import folder (``CNNVIS_IMPORT_DIR``, default DATA_DIR/imports)."""

    format: Literal["mnist", "fashion-mnist", "cifar10", "folder"]
    path: str = Field(..., min_length=1, max_length=1024, description="relative to the import folder")
    name: str = Field(..., max_length=40, description="lowercase letters, digits, - and _")
    channels: Literal[1, 3] | None = Field(None, description="folder images: 1 (grey) or 3 (RGB); default from the images")
    height: int | None = Field(None, ge=8, le=256, description="folder images: input height; default from the images")
    width: int | None = Field(None, ge=8, le=256, description="folder images: input width; default from the images")
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="folder without train/ and test/: test share")
    seed: int = Field(0, ge=0, le=2**31 - 1)


class LiveMessage(HyperparameterChanges):
    """One message from a live-training client; ``"pin": null`` unpins the image."""

    action: Literal["play", "pause", "step", "state"]
    steps: int | None = Field(None, ge=1, le=100_000)
    eval_every: int | None = Field(None, ge=0, le=1_000_000, description="steps between evaluations; 0 turns them off")
    pin: InputRef | None = None
    activations_every_ms: int | None = Field(None, ge=100, le=600_000)
    dtype: Literal["float32", "float16"] | None = None
    layers: list[LayerIndex] | None = Field(None, max_length=1024)


# ---- responses -------------------------------------------------------------------------------
class HistoryRecord(BaseModel):
    """A history record as it was appended; fields not listed here may follow (older files' extras)."""

    model_config = ConfigDict(extra="allow")
    step: int
    time: float | None = Field(None, description="when it was recorded, seconds since 1970")


class StepPoint(HistoryRecord):
    """One training step; with ``layers=true`` also grad_norm, update_ratio and dead_relu per layer index
    (``{"0": 0.12, ...}``, absent where not recorded)."""

    loss: float | None = Field(None, description="the batch's loss; null when not finite (training diverged)")
    accuracy: float | None = Field(None, description="the batch's accuracy before the update")
    learning_rate: float | None = None
    epoch: int | None = Field(None, description="completed epochs")


class EvaluationPoint(HistoryRecord):
    split: str | None = None
    loss: float | None = None
    accuracy: float | None = None
    per_class_accuracy: list[float | None] | None = None


class EventPoint(HistoryRecord):
    changes: dict[str, Any] = Field(default_factory=dict, description="what changed at this step (hyperparameters, frozen layers, import, transfer)")


class HistoryAnswer(BaseModel):
    """GET /history as JSON (its CSV form has one row per step, evaluation and event)."""

    step: int = Field(description="the model's current step")
    steps: list[StepPoint] = Field(description="in step order")
    evaluations: list[EvaluationPoint] = Field(description="in the order they were made")
    events: list[EventPoint] = Field(description="in the order they happened")
    total_steps: int = Field(description="steps recorded in all; more than len(steps) when downsampled or paged")
    downsampled: bool = Field(description="true when steps, evaluations or events were thinned to fit points")
    next_from_step: int | None = Field(description="a page's answer: the from_step of the next page; null after the "
                                       "last page and in a downsampled answer")


def layer_json(model: Any, info: Any) -> dict[str, Any]:
    rf = info.receptive_field
    return {
        "index": info.index, "type": info.type, "title": info.title, "kind": info.kind, "name": info.name, "input_shape": list(info.input_shape),
        "output_shape": list(info.output_shape), "parameters": info.parameters, "macs": info.macs,
        "receptive_field": {"size": rf.size, "jump": rf.jump, "start": rf.start},
        "trainable": model.trainable(info.index),
    }  # fmt: skip


def model_json(rec: ModelRecord) -> dict[str, Any]:
    from engine.specs import spec_to_dict

    m = rec.model
    return {
        "id": rec.id, "name": rec.name, "read_only": rec.read_only, "dataset": rec.dataset, "classes": list(rec.classes),
        "spec": spec_to_dict(m.spec), "step": rec.step, "epoch": rec.epoch, "examples_seen": rec.examples_seen,
        "seed": rec.seed, "parameters": m.num_parameters, "input_shape": list(m.input_shape),
        "training": rec.hp.to_dict(), "frozen": sorted(m.frozen), "created": rec.created, "copied_from": rec.copied_from,
        "shared": rec.read_only and rec.owner is not None,  # read-only because a share link opened it
        "layers": [layer_json(m, info) for info in m.info],
    }  # fmt: skip
