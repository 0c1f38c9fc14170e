"""A workflow definition as a validated DAG: the checks of `POST /workflows` (as the original's, plus
mappings) and the graph questions the executor asks (upstream, descendants, readiness).

Pure: no store, so every rule is unit-tested on its own. Whether directives and harness profiles exist is
checked by the service, which needs the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from athena.v1 import workflows_pb2
from athena_server.errors import config_error

CTX = "workflows.create.definition"
# The output a step exposes when it declares none: its run's whole output.
DEFAULT_OUTPUT = "output"


@dataclass(frozen=True)
class Mapping_:
    from_output: str
    to_input: str


@dataclass(frozen=True)
class Step:
    id: str
    directive_id: str
    harness_profile_id: str
    outputs: tuple[str, ...] = ()
    max_attempts: int = 1
    timeout_ms: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def exposed_outputs(self) -> tuple[str, ...]:
        return self.outputs or (DEFAULT_OUTPUT,)


@dataclass(frozen=True)
class Dependency:
    from_step: str
    to_step: str
    mappings: tuple[Mapping_, ...] = ()


@dataclass(frozen=True)
class Definition:
    steps: tuple[Step, ...]
    dependencies: tuple[Dependency, ...]

    @property
    def step_ids(self) -> list[str]:
        return [s.id for s in self.steps]

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    def upstream(self, step_id: str) -> list[str]:
        return [d.from_step for d in self.dependencies if d.to_step == step_id]

    def incoming(self, step_id: str) -> list[Dependency]:
        return [d for d in self.dependencies if d.to_step == step_id]

    def descendants(self, roots: Iterable[str]) -> set[str]:
        """Every step reachable from `roots` (the roots excluded unless reachable from another root)."""
        seen: set[str] = set()
        frontier = list(roots)
        while frontier:
            current = frontier.pop()
            for d in self.dependencies:
                if d.from_step == current and d.to_step not in seen:
                    seen.add(d.to_step)
                    frontier.append(d.to_step)
        return seen

    def blocking(self, step_id: str, ok: set[str]) -> list[str]:
        """Upstream steps that have not succeeded, in definition order."""
        ups = set(self.upstream(step_id))
        return [s for s in self.step_ids if s in ups and s not in ok]

    def to_json(self) -> dict[str, Any]:
        """The normalised definition as stored and returned (the contract's JSON)."""
        steps = []
        for s in self.steps:
            execution: dict[str, Any] = {"maxAttempts": s.max_attempts}
            if s.timeout_ms is not None:
                execution["timeoutMs"] = s.timeout_ms
            if s.metadata:
                execution["metadata"] = dict(s.metadata)
            steps.append(
                {
                    "id": s.id,
                    "directiveId": s.directive_id,
                    "harnessProfileId": s.harness_profile_id,
                    "outputs": list(s.outputs),
                    "execution": execution,
                }
            )
        deps = [
            {
                "from": d.from_step,
                "to": d.to_step,
                "mappings": [{"fromOutput": m.from_output, "toInput": m.to_input} for m in d.mappings],
            }
            for d in self.dependencies
        ]
        return {"steps": steps, "dependencies": deps}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Definition:
        steps = tuple(
            Step(
                id=s["id"],
                directive_id=s["directiveId"],
                harness_profile_id=s["harnessProfileId"],
                outputs=tuple(s.get("outputs", ())),
                max_attempts=int(s.get("execution", {}).get("maxAttempts", 1)),
                timeout_ms=s.get("execution", {}).get("timeoutMs"),
                metadata=dict(s.get("execution", {}).get("metadata", {})),
            )
            for s in data["steps"]
        )
        deps = tuple(
            Dependency(
                d["from"], d["to"], tuple(Mapping_(m["fromOutput"], m["toInput"]) for m in d.get("mappings", ()))
            )
            for d in data["dependencies"]
        )
        return Definition(steps, deps)


def _text(value: str, where: str) -> str:
    value = value.strip()
    if not value:
        raise config_error(f"{CTX}.{where} must be a non-empty string.")
    return value


def parse(definition: workflows_pb2.WorkflowDefinition) -> Definition:
    """Validate a definition; each problem is a CONFIG_ERROR naming the field and the offending value."""
    if not definition.steps:
        raise config_error(f"{CTX}.steps must contain at least one step.")
    steps: list[Step] = []
    seen: set[str] = set()
    for i, raw in enumerate(definition.steps):
        step_id = _text(raw.id, f"steps[{i}].id")
        if step_id in seen:
            raise config_error(f"{CTX}.steps[{i}].id '{step_id}' is a duplicate step id.")
        seen.add(step_id)
        outputs: list[str] = []
        for j, name in enumerate(raw.outputs):
            name = _text(name, f"steps[{i}].outputs[{j}]")
            if name not in outputs:
                outputs.append(name)
        execution = raw.execution
        max_attempts = execution.max_attempts if execution.HasField("max_attempts") else 1
        if max_attempts <= 0:
            raise config_error(f"{CTX}.steps[{i}].execution.maxAttempts must be a positive integer.")
        timeout_ms = execution.timeout_ms if execution.HasField("timeout_ms") else None
        if timeout_ms is not None and timeout_ms <= 0:
            raise config_error(f"{CTX}.steps[{i}].execution.timeoutMs must be a positive integer.")
        metadata = {}
        for key, value in execution.metadata.items():
            metadata[key] = _text(value, f"steps[{i}].execution.metadata.{key}")
        steps.append(
            Step(
                id=step_id,
                directive_id=_text(raw.directive_id, f"steps[{i}].directiveId"),
                harness_profile_id=_text(raw.harness_profile_id, f"steps[{i}].harnessProfileId"),
                outputs=tuple(outputs),
                max_attempts=max_attempts,
                timeout_ms=timeout_ms,
                metadata=metadata,
            )
        )
    by_id = {s.id: s for s in steps}
    deps: list[Dependency] = []
    edges: set[tuple[str, str]] = set()
    for i, raw_dep in enumerate(definition.dependencies):
        src = _text(raw_dep.from_step, f"dependencies[{i}].from")
        dst = _text(raw_dep.to_step, f"dependencies[{i}].to")
        for end, name in (("from", src), ("to", dst)):
            if name not in by_id:
                raise config_error(f"{CTX}.dependencies[{i}].{end} references unknown step '{name}'.")
        if src == dst:
            raise config_error(f"{CTX}.dependencies[{i}] is a self edge on step '{src}'.")
        if (src, dst) in edges:
            raise config_error(f"{CTX}.dependencies[{i}] duplicates the edge '{src}' -> '{dst}'.")
        edges.add((src, dst))
        mappings: list[Mapping_] = []
        for j, m in enumerate(raw_dep.mappings):
            out = _text(m.from_output, f"dependencies[{i}].mappings[{j}].fromOutput")
            if out not in by_id[src].exposed_outputs:
                raise config_error(
                    f"{CTX}.dependencies[{i}].mappings[{j}].fromOutput '{out}' is not an output of step '{src}' "
                    f"(outputs: {', '.join(by_id[src].exposed_outputs)})."
                )
            mappings.append(Mapping_(out, _text(m.to_input, f"dependencies[{i}].mappings[{j}].toInput")))
        deps.append(Dependency(src, dst, tuple(mappings)))
    cyclic = cycle_nodes([s.id for s in steps], edges)
    if cyclic:
        raise config_error(f"{CTX}.dependencies must form a DAG; cycle detected among: {', '.join(cyclic)}.")
    return Definition(tuple(steps), tuple(deps))


def cycle_nodes(nodes: list[str], edges: set[tuple[str, str]]) -> list[str]:
    """Kahn's algorithm: the nodes left with in-degree > 0 (on or behind a cycle), sorted; [] for a DAG."""
    indegree = dict.fromkeys(nodes, 0)
    for _, dst in edges:
        indegree[dst] += 1
    queue = [n for n in nodes if indegree[n] == 0]
    while queue:
        node = queue.pop()
        for src, dst in edges:
            if src == node:
                indegree[dst] -= 1
                if indegree[dst] == 0:
                    queue.append(dst)
    return sorted(n for n, d in indegree.items() if d > 0)


def render_input(text: str, inputs: Mapping[str, str]) -> str:
    """A step's input from its directive and its mapped inputs: `{{ name }}` placeholders are replaced, and
    inputs the directive does not mention are appended as `[name]` sections, so no mapping is lost."""
    out = text
    unused: list[str] = []
    for name, value in inputs.items():
        replaced = False
        for placeholder in (f"{{{{ {name} }}}}", f"{{{{{name}}}}}"):
            if placeholder in out:
                out = out.replace(placeholder, value)
                replaced = True
        if not replaced:
            unused.append(name)
    for name in unused:
        out += f"\n\n[{name}]\n{inputs[name]}"
    return out
