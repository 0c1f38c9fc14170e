"""DAG workflows: definitions, their runs, and the executor that drives a run's steps."""

from __future__ import annotations

from sqlalchemy import Connection

from athena.v1 import workflows_pb2
from athena_server.config import Settings
from athena_server.control.runs import RunService
from athena_server.errors import not_implemented
from athena_server.storage.store import Store


class WorkflowService:
    def __init__(self, store: Store, settings: Settings, runs: RunService, owner_id: str) -> None:
        self.store = store
        self.settings = settings
        self.runs = runs
        self.owner_id = owner_id

    async def create(self, req: workflows_pb2.CreateWorkflowRequest) -> workflows_pb2.Workflow:
        raise not_implemented("CreateWorkflow")

    async def list(self, req: workflows_pb2.ListWorkflowsRequest) -> workflows_pb2.ListWorkflowsResponse:
        raise not_implemented("ListWorkflows")

    async def get_run(self, workflow_id: str) -> workflows_pb2.GetWorkflowRunResponse:
        raise not_implemented("GetWorkflowRun")

    async def resume(self, req: workflows_pb2.ResumeWorkflowRunRequest) -> tuple[workflows_pb2.WorkflowRun, int]:
        """Returns the run and the REST status (200 finished, 202 with `wait: false`)."""
        raise not_implemented("ResumeWorkflowRun")

    def release_owned(self, conn: Connection, dead_owner_ids: list[str], at_ms: int) -> None:
        """Called by the liveness reaper inside its transaction: runs the dead processes were executing
        lose their owner, so the next start or resume continues them."""

    async def recover(self) -> None:
        """At start-up, after the reaper: continue the unfinished workflow runs nobody owns."""

    async def close(self) -> None:
        """Stop executing (the runs stay `running` with no owner, for the next start to continue)."""
