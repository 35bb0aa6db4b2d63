"""The service's routes, one `APIRouter` per concern."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from starlette.routing import BaseRoute


def flat_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """The routes as requests meet them: FastAPI keeps an included `APIRouter` whole, standing for its own routes
    (`app.routes` lists the router, not `/health`)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        yield from flat_routes(included.routes) if included is not None else [route]
