"""Recognition in the addressed gallery: who a photo shows (`/identify`), whether it shows a
claimed identity or the same as a second photo (`/verify`), and its embedding (`/embed`)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile

from siamese.recognition.decisions import accepts
from siamese.service.dependencies import Reader, Running, Target, read_image
from siamese.service.errors import ApiError
from siamese.service.schemas import EmbedOut, IdentifyOut, VerificationOut

router = APIRouter(tags=["recognition"])


@router.post("/identify", response_model=IdentifyOut)
async def identify(
    _: Reader,
    service: Running,
    served: Target,
    image: Annotated[UploadFile, File(description="the photo")],
    k: Annotated[int, Query(ge=1, le=100, description="candidates listed")] = 5,
    every_face: Annotated[
        bool, Query(description="face models: one answer per face in the photo")
    ] = False,
) -> dict[str, Any]:
    """Who the image shows: the best identity within the threshold, or unknown."""
    data = await read_image(service, image, "image")
    read = await service.read_images(served, [data], [image.filename or "image"], every_face)
    if not every_face:  # one photo, its main face: none is an error, as documented
        read.prepared.require_faces(served.recognizer.preprocessing.face)
    answers = await served.locked(lambda: served.gallery.identify(read, k))
    return {"results": [a.as_dict() for a in answers]}


@router.post("/verify", response_model=VerificationOut)
async def verify(
    _: Reader,
    service: Running,
    served: Target,
    image: Annotated[UploadFile, File(description="the photo")],
    identity: Annotated[str | None, Form(description="the claimed identity")] = None,
    image2: Annotated[
        UploadFile | None, File(description="a second photo (instead of identity)")
    ] = None,
) -> dict[str, Any]:
    """Whether the image shows the claimed identity, or the same as a second image."""
    if (identity is None) == (image2 is None):
        raise ApiError("invalid_request", "give either identity or image2, not both")
    data = await read_image(service, image, "image")
    if identity is not None:
        read = await service.read_images(served, [data], [image.filename or "image"])
        result = await served.locked(lambda: served.gallery.verify(identity, read))
        return result.as_dict()
    assert image2 is not None
    data2 = await read_image(service, image2, "image2")
    z1, z2 = await asyncio.gather(service.embed_one(served, data), service.embed_one(served, data2))
    distance = float(served.recognizer.dissimilarity(z1, z2)[0])
    threshold = served.gallery.threshold
    return {
        "identity": None,
        "source": image.filename or "image",
        "distance": distance,
        "same": accepts(distance, threshold),
        "threshold": threshold,
        "far": served.gallery.far,
    }


@router.post("/embed", response_model=EmbedOut)
async def embed(
    _: Reader, service: Running, served: Target, image: Annotated[UploadFile, File()]
) -> dict[str, Any]:
    """The image's embedding under the gallery's model."""
    z = await service.embed_one(served, await read_image(service, image, "image"))
    return {
        "embedding": z[0].tolist(),
        "dim": int(z.shape[1]),
        "model": served.recognizer.fingerprint,
    }
