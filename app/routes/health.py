"""Liveness: answers without touching the CPU-bound parts of the server."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.deps import get_state

router = APIRouter(tags=["health"])


@router.get("/health", summary="Is the server up?")
async def health(request: Request) -> dict:
    # get_state called here, not as a dependency: FastAPI would run that plain `def` in the thread
    # pool, a hop that cost more than the rest of this answer (see app/routes/forward.py's loop_state)
    state = get_state(request)
    return {"status": "ok", "models": len(state.models.list()), "live_sessions": state.live.count()}
