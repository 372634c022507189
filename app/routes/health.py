"""Liveness: answers without touching the CPU-bound parts of the server."""

from __future__ import annotations

from fastapi import APIRouter, Request

router = APIRouter(tags=["health"])


@router.get("/health", summary="Is the server up?")
async def health(request: Request) -> dict:
    state = request.app.state.cnnvis  # no dependency: this answer is the HTTP stack's own cost
    return {"status": "ok", "models": len(state.models.list()), "live_sessions": state.live.count()}
