"""The running model: its metadata and measured figures, and the figures of its card."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from detecteur.api.errors import ERROR_RESPONSES, ServiceError
from detecteur.api.schemas import ErrorResponse, ModelInfo
from detecteur.api.state import ReadyDetector, State

router = APIRouter(tags=["model"])


def _figures(model_path: Path) -> list[Path]:
    folder = model_path.parent / "figures"
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


@router.get("/v1/model", response_model=ModelInfo, responses=ERROR_RESPONSES)
async def model_info(state: State, detector: ReadyDetector) -> ModelInfo:
    """The running model: what it is, its calibration, and its measured figures."""
    metadata = detector.metadata
    model_path = state.model_path or state.settings.model_path
    return ModelInfo(
        **metadata.model_dump(include=set(ModelInfo.model_fields) - {"figures"}),
        figures=[f"/v1/model/figures/{path.name}" for path in _figures(model_path)],
    )


@router.get("/v1/model/figures/{name}", responses={404: {"model": ErrorResponse}})
async def model_figure(state: State, name: str) -> FileResponse:
    """A figure of the model card (PNG), drawn from the training run's files."""
    for path in _figures(state.model_path or state.settings.model_path):
        if path.name == name:
            return FileResponse(path, media_type="image/png")
    raise ServiceError(404, "not_found", f"no figure named {name!r}")
