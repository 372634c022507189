"""Live training over a WebSocket: the client plays, pauses, steps and pins; the server reports.

The training thread hands JSON strings to this coroutine through an asyncio queue
(``loop.call_soon_threadsafe``), so NumPy work never runs on the event loop. A bad message gets
``{"type": "error"}`` and the socket stays open; closing the socket pauses training.

Frames: every message is a JSON text frame, except that a client connecting with ``?format=binary``
(the page does) gets each ``activations`` message as one binary frame in app.encoding's binary form
(magic ``CNV1``, a uint32 LE header length, the JSON header ``{"type": "activations", ...}`` with each
tensor as ``{shape, dtype, offset, length}``, then the raw little-endian arrays at 8-byte-aligned
offsets): about 25 % smaller than base64 and decoded without copies. Without it, activations stay
JSON text with base64 tensors, as for the REST forward answer.

Close codes, 4000 + the HTTP status they stand for: 4403 another origin, 4404 no such model (or, with
workspaces on, another workspace's, even with its share token: a share link reads, never trains), 4409 the
model already has a live connection, and 4410 with reason ``"model deleted"`` when
``DELETE /api/v1/models/{id}`` deleted the model while connected (its training stopped unsaved and
the model is gone when the close arrives; the client should not reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import NamedTuple

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from app.errors import AppError, describe_validation
from app.schemas import LiveMessage

router = APIRouter(tags=["live"])
MAX_MESSAGE = 64 * 1024


class _Close(NamedTuple):
    code: int
    reason: str


async def _pump(ws: WebSocket, out: asyncio.Queue, session) -> None:
    """Send what the thread queued, in order; a `_Close` sends the close frame and ends the pump."""
    while True:
        item = await out.get()
        if isinstance(item, _Close):
            with contextlib.suppress(WebSocketDisconnect):  # the client left first
                await ws.close(code=item.code, reason=item.reason)
            return
        await (ws.send_bytes(item) if isinstance(item, bytes) else ws.send_text(item))
        session.sent()


def _error(detail: str, status: int = 422) -> str:
    return json.dumps({"type": "error", "detail": detail, "status": status})


@router.websocket("/models/{model_id}/live")
async def live(ws: WebSocket, model_id: str) -> None:
    state = ws.app.state.cnnvis
    await ws.accept()
    loop, out = asyncio.get_running_loop(), asyncio.Queue()

    def emit(item: str | bytes | _Close) -> None:
        try:
            loop.call_soon_threadsafe(out.put_nowait, item)
        except RuntimeError:  # the loop is closed: the socket is gone
            pass

    try:
        rec = state.models.get(model_id, shared=False)  # another workspace's model: 4404, as a missing one
        session = state.live.open(rec, emit, lambda code, reason: emit(_Close(code, reason)),
                                  binary=ws.query_params.get("format") == "binary")
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
