"""What a unit looks for: the top 9 dataset images of a channel (a cached pass with progress) and a
dreamed image that excites it (activation maximization)."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from app.deps import Record, State
from app.services import features
from app.services.features import FeatureService

MAX_STEPS = 256


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.features = FeatureService()
    yield


router = APIRouter(tags=["features"], lifespan=lifespan)


def get_service(request: Request) -> FeatureService:
    return request.app.state.features


Service = Annotated[FeatureService, Depends(get_service)]
Layer = Annotated[int, Path(ge=0, le=10_000, description="a layer index with maps (C, H, W)")]
Channel = Annotated[int, Path(ge=0, le=100_000, description="a channel of that layer")]
UNIT = "/models/{model_id}/layers/{index}/channels/{channel}"


class DreamRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seeds the start image and the jitter")
    steps: int = Field(96, ge=1, le=MAX_STEPS, description="gradient ascent steps")


@router.get(UNIT + "/top", summary="The top 9 dataset images of a channel: status, progress, or crops and deconvnet projections")
def get_top(rec: Record, state: State, service: Service, index: Layer, channel: Channel) -> dict:
    return features.top_status(state, service, rec, index, channel)


@router.post(UNIT + "/top", summary="Search the model's dataset for a channel's top 9 (cached until the weights change)")
def post_top(rec: Record, state: State, service: Service, index: Layer, channel: Channel) -> dict:
    return features.compute_top(state, service, rec, index, channel)


@router.get(UNIT + "/maximize", summary="Progress of the running or last dream of a channel")
def get_dream(rec: Record, service: Service, index: Layer, channel: Channel) -> dict:
    return features.dream_status(service, rec, index, channel)


@router.post(UNIT + "/maximize", summary="Dream up an image that excites a channel (activation maximization)")
def post_dream(body: DreamRequest, rec: Record, state: State, service: Service, index: Layer, channel: Channel) -> dict:
    return features.dream(state, service, rec, index, channel, seed=body.seed, steps=body.steps)
