"""Forward passes and explanations for one image: an uploaded image, a dataset sample or a file."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from app.deps import Record, State
from app.encoding import BINARY, TENSOR_RESPONSES, tensor_response, wants_binary
from app.errors import Invalid
from app.schemas import ExplainRequest, ForwardRequest
from app.services import explanations, inference

router = APIRouter(tags=["forward"])


Dtype = Annotated[Literal["float32", "float16"], Query(description="float16 halves the payload")]
Layers = Annotated[str | None, Query(max_length=4000, description="comma-separated layer indices, e.g. 0,3 (default: all)")]
Format = Annotated[Literal["json", "binary"] | None, Query(alias="format", description=f"binary: the {BINARY} form "
                   "(raw arrays after a JSON header); default: by the Accept header, else JSON")]
_REF = "#/components/schemas/{model}"
_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": ForwardRequest.model_json_schema(ref_template=_REF)},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
}}}  # fmt: skip


@router.post("/models/{model_id}/forward", openapi_extra=_BODY, response_class=Response, responses=TENSOR_RESPONSES,
             summary="Every layer's output for one image (JSON image_id or sample, or a multipart file)")
async def forward(request: Request, rec: Record, state: State, dtype: Dtype = "float32", layers: Layers = None,
                  fmt: Format = None) -> Response:
    binary = wants_binary(request.headers.get("accept"), fmt)

    def answer(x, label: int | None = None) -> Response:  # the forward pass and its encoding, in a worker thread
        return tensor_response(inference.forward_arrays(state, rec, x, layers=layers, label=label), dtype, binary)

    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=8) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise Invalid("a multipart forward request needs the image in a field named 'file'")
            data = await upload.read(state.settings.max_upload_bytes + 1)
        x = await run_in_threadpool(state.images.preprocess_bytes, data, rec.model.input_shape)
        return await run_in_threadpool(answer, x)
    try:
        ref = ForwardRequest.model_validate_json(await request.body() or b"null")
    except ValidationError as e:
        raise RequestValidationError(e.errors(include_input=False, include_context=False)) from None
    return await run_in_threadpool(lambda: answer(*inference.resolve_input(state, rec, ref)))  # one thread hop


_NDJSON = {200: {"description": "NDJSON lines: progress {done, total, pass}, then {result} (the explain body) or {error}",
                 "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}}


@router.post("/models/{model_id}/explain", response_class=Response, responses=TENSOR_RESPONSES,
             summary="An attribution map for one image and any class, its overlay picture and, when asked, its checks")
def explain(request: Request, body: ExplainRequest, rec: Record, state: State, fmt: Format = None) -> Response:
    x, _ = inference.resolve_input(state, rec, body)
    binary = wants_binary(request.headers.get("accept"), fmt)
    return tensor_response(explanations.explain_map(state, rec, x, body), "float32", binary)


@router.post("/models/{model_id}/explain/stream", response_class=StreamingResponse, responses=_NDJSON,
             summary="The same explanation as a stream: occlusion's progress as it runs, then the result")
def explain_stream(body: ExplainRequest, rec: Record, state: State) -> StreamingResponse:
    x, _ = inference.resolve_input(state, rec, body)
    return StreamingResponse(explanations.explain_stream(state, rec, x, body), media_type="application/x-ndjson")
