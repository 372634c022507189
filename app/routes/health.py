"""Liveness: answers without touching the CPU-bound parts of the server."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import State

router = APIRouter(tags=["health"])


@router.get("/health", summary="Is the server up?")
async def health(state: State) -> dict:
    return {"status": "ok", "models": len(state.models.list()), "live_sessions": state.live.count()}
