"""Live training over a WebSocket: the client plays, pauses, steps and pins; the server reports.

The training thread hands JSON strings to this coroutine through an asyncio queue
(``loop.call_soon_threadsafe``), so NumPy work never runs on the event loop. A bad message gets
``{"type": "error"}`` and the socket stays open; closing the socket pauses training.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from app.errors import AppError, describe_validation
from app.schemas import LiveMessage

router = APIRouter(tags=["live"])
MAX_MESSAGE = 64 * 1024


async def _pump(ws: WebSocket, out: asyncio.Queue, session) -> None:
    while True:
        text = await out.get()
        await ws.send_text(text)
        session.sent()


def _error(detail: str, status: int = 422) -> str:
    return json.dumps({"type": "error", "detail": detail, "status": status})


@router.websocket("/models/{model_id}/live")
async def live(ws: WebSocket, model_id: str) -> None:
    state = ws.app.state.cnnvis
    await ws.accept()
    loop, out = asyncio.get_running_loop(), asyncio.Queue()

    def emit(text: str) -> None:
        try:
            loop.call_soon_threadsafe(out.put_nowait, text)
        except RuntimeError:  # the loop is closed: the socket is gone
            pass

    try:
        rec = state.models.get(model_id)
        session = state.live.open(rec, emit)
    except AppError as e:
        await ws.send_text(_error(e.detail, e.status))
        await ws.close(code=4000 + e.status)
        return
    pump = asyncio.create_task(_pump(ws, out, session))
    session.submit(LiveMessage(action="state"))
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            raw = message.get("text") or (message.get("bytes") or b"").decode("utf-8", "replace")
            if len(raw) > MAX_MESSAGE:
                emit(_error(f"messages are limited to {MAX_MESSAGE} bytes"))
                continue
            try:
                session.submit(LiveMessage.model_validate_json(raw))
            except ValidationError as e:
                emit(_error(describe_validation(e.errors(include_input=False))))
    except WebSocketDisconnect:
        pass
    finally:
        pump.cancel()
        await run_in_threadpool(state.live.close, session)
