"""Declarative specs (`/v1/workflows/spec…`, `/v1/workflows/{id}/spec…`): the SDK's `client.workflows.spec.get`,
`spec.validate`, `plan` and `apply`. How each works, and why an apply is atomic: api.spec_service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from api.definitions import Definitions
from api.deps import PrincipalDep, SettingsDep, StoreDep
from api.errors import NotFoundError
from api.responses import SpecApplyView, SpecExportView, SpecPlanView, SpecValidationView
from api.routes.workflows import IfMatch
from api.spec_service import SpecService
from docflow.spec import MAX_SPEC_BYTES

router = APIRouter(tags=["specs"])
_400: dict[int | str, dict[str, Any]] = {
    400: {"description": "The spec is invalid: `details.field` names where, `details.issues` lists all"}
}


def _service(store: StoreDep, settings: SettingsDep) -> SpecService:
    return SpecService(Definitions(store), settings.max_blocks_per_workflow)


ServiceDep = Annotated[SpecService, Depends(_service)]


class SpecRequest(BaseModel):
    """A workflow's YAML spec (the SDK's `DeclarativeWorkflowRequest`)."""

    model_config = ConfigDict(extra="ignore")
    yaml_definition: str = Field(max_length=MAX_SPEC_BYTES, description="The workflow's YAML spec")
    project_id: str | None = Field(default=None, description="The project of the API key (the default)")


def _owner(principal: PrincipalDep, body: SpecRequest) -> str:
    if body.project_id not in (None, principal.project_id):
        raise NotFoundError(f"no project '{body.project_id}'", code="project_not_found", field="project_id")
    return principal.project_id


@router.post("/spec/validate", response_model=SpecValidationView, responses=_400)
async def validate_spec(body: SpecRequest, principal: PrincipalDep, service: ServiceDep) -> SpecValidationView:
    """Check a spec without changing anything: 400 naming the first error; warnings in `diagnostics`."""
    return await service.validate(_owner(principal, body), body.yaml_definition)


@router.post("/spec/plan", response_model=SpecPlanView, responses=_400)
async def plan_new(body: SpecRequest, principal: PrincipalDep, service: ServiceDep) -> SpecPlanView:
    """What applying the spec as a new workflow would create."""
    view, _ = await service.plan(_owner(principal, body), None, body.yaml_definition)
    return view


@router.post("/spec/apply", response_model=SpecApplyView, status_code=201, responses=_400)
async def apply_new(
    body: SpecRequest, principal: PrincipalDep, service: ServiceDep, response: Response
) -> SpecApplyView:
    """Create a workflow from the spec (its `metadata.id` is not the target); the draft's ETag in `ETag`."""
    view, etag = await service.apply(principal.project_id, None, body.yaml_definition, _owner(principal, body), None)
    response.headers["ETag"] = etag
    return view


@router.get("/{workflow_id}/spec", response_model=SpecExportView)
async def export_spec(
    workflow_id: str, principal: PrincipalDep, service: ServiceDep, response: Response
) -> SpecExportView:
    """The draft as a YAML spec (applying it back plans no change); the draft's ETag in `ETag`."""
    view, etag = await service.export(principal.project_id, workflow_id)
    response.headers["ETag"] = etag
    return view


@router.post("/{workflow_id}/spec/plan", response_model=SpecPlanView, responses=_400)
async def plan_existing(
    workflow_id: str, body: SpecRequest, principal: PrincipalDep, service: ServiceDep, response: Response
) -> SpecPlanView:
    """What applying the spec to this workflow's draft would change; the draft's ETag (for apply's If-Match)
    in `ETag`."""
    view, etag = await service.plan(_owner(principal, body), workflow_id, body.yaml_definition)
    if etag is not None:
        response.headers["ETag"] = etag
    return view


@router.post("/{workflow_id}/spec/apply", response_model=SpecApplyView, responses=_400)
async def apply_existing(
    workflow_id: str,
    body: SpecRequest,
    principal: PrincipalDep,
    service: ServiceDep,
    response: Response,
    if_match: IfMatch = None,
) -> SpecApplyView:
    """Make the draft what the spec says, in one write; with `If-Match` (the plan's ETag), only if the draft is
    still the one planned against (else 409 `draft_changed`). The draft's new ETag in `ETag`."""
    project_id = _owner(principal, body)
    view, etag = await service.apply(project_id, workflow_id, body.yaml_definition, None, if_match)
    response.headers["ETag"] = etag
    return view
