"""Uploaded images: checked, stored, served back; unused ones expire (`app.stores.images`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Path, Response, UploadFile

from app.deps import State

router = APIRouter(tags=["images"])
ImageId = Annotated[str, Path(max_length=64)]


@router.post("/images", status_code=201, summary="Upload an image (PNG, JPEG, GIF, BMP, WebP, TIFF; 10 MB, 4096x4096)",
             description="413 when the file, its sides or the memory decoding it takes (from its header) are over a limit; "
                         "415 not an image format read here; 422 truncated or damaged; 507 when CNNVIS_MAX_IMAGES uploads "
                         "are stored or the data directory is at CNNVIS_MAX_DATA_BYTES. Uploads no model or page uses for CNNVIS_IMAGE_TTL_S seconds expire.")
def upload_image(state: State, file: Annotated[UploadFile, File(description="the image")]) -> dict:
    data = file.file.read(state.settings.max_upload_bytes + 1)
    state.quota.check_bytes(len(data))
    with state.cpu.slot():
        return state.images.save(data)


@router.delete("/images/{image_id}", status_code=204, summary="Delete an uploaded image")
def delete_image(image_id: ImageId, state: State) -> Response:
    state.images.delete(image_id)
    return Response(status_code=204)


@router.get("/images/{image_id}", summary="An uploaded image", response_class=Response,
            responses={200: {"content": {"image/*": {}}}})
def get_image(image_id: ImageId, state: State) -> Response:
    data, media_type = state.images.content(image_id)
    return Response(data, media_type=media_type, headers={"Cache-Control": "private, max-age=86400"})
