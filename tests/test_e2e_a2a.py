"""The agent-to-agent bus and its dead-letter queue (issue 11), end to end over REST and gRPC on a real server:
a message becomes one run in the target session; one that keeps failing lands in the DLQ with its payload,
source, target, reason, last error and trace id; requeue redelivers it once, discard is final."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import pytest

from athena.v1 import a2a_dlq_pb2, a2a_dlq_pb2_grpc, a2a_pb2, a2a_pb2_grpc
from athena_client.contract import message_to_json
from tests.support.events import events_of
from tests.support.postgres import servers_on_one_database
from tests.support.processes import AthenaProcess, running_api, serving
from tests.support.rpc_calls import call_grpc, call_rest, method_named, request_of
from tests.support.shapes import assert_iso, error_of, new_session, ok_data
from tests.support.waiting import wait_until

T = TypeVar("T")

# Fast retries and polling so a message runs through its attempts in well under a second; the default
# number of attempts comes from the setting.
BUS_ENV = {"ATHENA_A2A_RETRY_DELAY_MS": "20", "ATHENA_A2A_POLL_SECONDS": "0.1", "ATHENA_A2A_MAX_ATTEMPTS": "2"}
FAIL = {"mock.failAttempts": "99"}  # every provider attempt of every delivery run fails
MESSAGE_KEYS = {
    "id",
    "fromSessionId",
    "toSessionId",
    "input",
    "metadata",
    "provider",
    "model",
    "status",
    "attempts",
    "maxAttempts",
    "requeues",
    "createdAt",
    "updatedAt",
    "traceId",
}


@dataclass
class Bus:
    process: AthenaProcess
    rest: httpx.Client
    channel: grpc.Channel

    @property
    def messages(self) -> a2a_pb2_grpc.A2aServiceStub:
        return a2a_pb2_grpc.A2aServiceStub(self.channel)

    @property
    def dlq(self) -> a2a_dlq_pb2_grpc.A2aDlqServiceStub:
        return a2a_dlq_pb2_grpc.A2aDlqServiceStub(self.channel)

    def send(self, transport: str, **fields: Any) -> dict[str, Any]:
        """Send over `transport`; the message as REST JSON (gRPC answers converted the contract's way)."""
        if transport == "rest":
            return dict(ok_data(self.rest.post("/api/v1/a2a/messages", json=fields), 202))
        request = request_of(method_named("A2aService.SendA2aMessage"), **fields)
        return message_to_json(self.messages.SendA2aMessage(request).message)

    def get(self, message_id: str) -> dict[str, Any]:
        return dict(ok_data(self.rest.get(f"/api/v1/a2a/messages/{message_id}")))

    def requeue(self, transport: str, item_id: str, note: str | None = None) -> dict[str, Any]:
        body = {"auditNote": note} if note is not None else {}
        if transport == "rest":
            return dict(ok_data(self.rest.post(f"/api/v1/a2a/dlq/{item_id}/requeue", json=body)))
        resp = self.dlq.RequeueA2aDlqItem(a2a_dlq_pb2.RequeueA2aDlqItemRequest(id=item_id, audit_note=note))
        return message_to_json(resp)

    def discard(self, transport: str, item_id: str, note: str | None = None) -> dict[str, Any]:
        body = {"auditNote": note} if note is not None else {}
        if transport == "rest":
            return dict(ok_data(self.rest.post(f"/api/v1/a2a/dlq/{item_id}/discard", json=body)))
        resp = self.dlq.DiscardA2aDlqItem(a2a_dlq_pb2.DiscardA2aDlqItemRequest(id=item_id, audit_note=note))
        return message_to_json(resp)

    def dead_letters(self, status: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """Every DLQ item (of `status`), following the cursor."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": limit}
            if status:
                params["status"] = status
            if cursor:
                params["cursor"] = cursor
            page = ok_data(self.rest.get("/api/v1/a2a/dlq", params=params))
            items += page["items"]
            cursor = page.get("nextCursor")
            if not cursor:
                return items

    def events(self, session_id: str, *types: str) -> list[dict[str, Any]]:
        return events_of(self.rest, session_id, *types)

    def runs_in(self, session_id: str) -> list[str]:
        """The runs created in a session, in order (from `run.created`)."""
        return [e["runId"] for e in self.events(session_id, "run.created")]


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bus]:
    with serving(tmp_path_factory.mktemp("a2a"), env=BUS_ENV) as s:
        yield Bus(s.process, s.rest, s.channel)


def settled(bus: Bus, message_id: str, status: str) -> dict[str, Any]:
    """The message once it reached `status`."""

    def check() -> dict[str, Any] | None:
        message = bus.get(message_id)
        return message if message["status"] == status else None

    return wait_until(check, f"{message_id} {status}")


def dead_letter(bus: Bus, transport: str = "rest", **fields: Any) -> dict[str, Any]:
    """A message that failed all its attempts: returns it, dead-lettered."""
    sent = bus.send(transport, fromSessionId=new_session(), toSessionId=new_session(), input="doomed", **fields)
    return settled(bus, sent["id"], "dead-lettered")


TRANSPORTS = ("rest", "grpc")


# ---- sending and delivery ----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_message_is_delivered_as_one_run_in_the_target_session(bus: Bus, transport: str) -> None:
    source, target = new_session(), new_session()
    sent = bus.send(
        transport, fromSessionId=source, toSessionId=target, input="review the plan", metadata={"agentRole": "reviewer"}
    )
    assert set(sent) == MESSAGE_KEYS | {"nextAttemptAt"}, sent
    assert sent["id"].startswith("a2a_")
    assert (sent["fromSessionId"], sent["toSessionId"], sent["input"], sent["metadata"]) == (
        source,
        target,
        "review the plan",
        {"agentRole": "reviewer"},
    )
    assert (sent["provider"], sent["model"], sent["status"]) == ("mock", "default", "pending")
    assert (sent["attempts"], sent["maxAttempts"], sent["requeues"]) == (0, 2, 0)  # maxAttempts: the setting
    for key in ("createdAt", "updatedAt", "nextAttemptAt"):
        assert_iso(sent[key])

    delivered = settled(bus, sent["id"], "delivered")
    assert set(delivered) == MESSAGE_KEYS | {"deliveredAt", "runId"}, delivered
    assert (delivered["attempts"], delivered["traceId"]) == (1, sent["traceId"])
    assert_iso(delivered["deliveredAt"])

    # The delivery is an ordinary run in the target session: the message is its input.
    run = ok_data(bus.rest.get(f"/api/v1/runs/{delivered['runId']}"))
    assert (run["sessionId"], run["input"], run["status"], run["traceId"]) == (
        target,
        "review the plan",
        "succeeded",
        sent["traceId"],
    )
    assert run["metadata"] == {"agentRole": "reviewer", "a2a.messageId": sent["id"], "a2a.fromSessionId": source}
    assert bus.runs_in(target) == [delivered["runId"]]
    transcript = ok_data(bus.rest.get(f"/api/v1/sessions/{target}/transcript"))["items"]
    assert [(e["role"], e["content"]) for e in transcript] == [
        ("user", "review the plan"),
        ("assistant", "Echo: user: review the plan"),
    ]

    # Over gRPC the same message reads the same.
    got = bus.messages.GetA2aMessage(a2a_pb2.GetA2aMessageRequest(id=sent["id"])).message
    assert message_to_json(got) == delivered

    [sent_event] = bus.events(source, "a2a.message.sent")
    assert (sent_event["traceId"], sent_event["payload"]) == (
        sent["traceId"],
        {"messageId": sent["id"], "fromSessionId": source, "toSessionId": target, "maxAttempts": 2},
    )
    [delivered_event] = bus.events(target, "a2a.message.delivered")
    assert (delivered_event["runId"], delivered_event["traceId"]) == (delivered["runId"], sent["traceId"])
    assert delivered_event["payload"] == {
        "messageId": sent["id"],
        "fromSessionId": source,
        "toSessionId": target,
        "attempt": 1,
        "maxAttempts": 2,
        "runId": delivered["runId"],
    }


def test_send_refuses_bad_input_and_stores_nothing(bus: Bus) -> None:
    source = new_session()
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"toSessionId": "t"}, 400, "CONFIG_ERROR", "a2a.send.fromSessionId must be a non-empty string."),
        ({"fromSessionId": source}, 400, "CONFIG_ERROR", "a2a.send.toSessionId must be a non-empty string."),
        ({"fromSessionId": source, "toSessionId": "t", "input": "  "}, 400, "CONFIG_ERROR", "a2a.send.input"),
        ({"fromSessionId": source, "toSessionId": "bad id", "input": "x"}, 400, "CONFIG_ERROR", "toSessionId"),
        ({"fromSessionId": source, "toSessionId": "t", "input": "x", "maxAttempts": 0}, 400, "CONFIG_ERROR", "1..20"),
        ({"fromSessionId": source, "toSessionId": "t", "input": "x", "maxAttempts": 21}, 400, "CONFIG_ERROR", "1..20"),
        (
            {"fromSessionId": source, "toSessionId": "t", "input": "x", "metadata": {"a2a.messageId": "forged"}},
            400,
            "CONFIG_ERROR",
            "reserved",
        ),
        (
            {"fromSessionId": source, "toSessionId": "t", "input": "x", "provider": "nope"},
            404,
            "PROVIDER_NOT_FOUND",
            "",
        ),
    ]
    for body, status, code, text in cases:
        err = error_of(bus.rest.post("/api/v1/a2a/messages", json=body), status, code)
        assert text in err["message"], (body, err)
        request = request_of(method_named("A2aService.SendA2aMessage"), **body)
        assert call_grpc(bus.channel, method_named("A2aService.SendA2aMessage"), request, {}).code == code
    listed = ok_data(bus.rest.get("/api/v1/a2a/messages", params={"fromSessionId": source}))
    assert listed == {"items": []}
    assert bus.events(source, "a2a.message.sent") == []


def test_an_idempotency_key_sends_a_message_once(bus: Bus) -> None:
    source = new_session()
    body = {"fromSessionId": source, "toSessionId": new_session(), "input": "once"}
    headers = {"idempotency-key": f"k-{source}"}
    first = bus.rest.post("/api/v1/a2a/messages", json=body, headers=headers)
    again = bus.rest.post("/api/v1/a2a/messages", json=body, headers=headers)
    assert ok_data(first, 202) == ok_data(again, 202)
    assert len(ok_data(bus.rest.get("/api/v1/a2a/messages", params={"fromSessionId": source}))["items"]) == 1


def test_messages_list_newest_first_by_filter_with_cursor_pages(bus: Bus) -> None:
    source, target = new_session(), new_session()
    ids = [bus.send("rest", fromSessionId=source, toSessionId=target, input=f"m{i}")["id"] for i in range(3)]
    for message_id in ids:
        settled(bus, message_id, "delivered")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"fromSessionId": source, "limit": 1, **({"cursor": cursor} if cursor else {})}
        page = ok_data(bus.rest.get("/api/v1/a2a/messages", params=params))
        seen += [m["id"] for m in page["items"]]
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert seen == ids[::-1]
    by_target = ok_data(bus.rest.get("/api/v1/a2a/messages", params={"toSessionId": target, "status": "delivered"}))
    assert [m["id"] for m in by_target["items"]] == ids[::-1]
    none = ok_data(bus.rest.get("/api/v1/a2a/messages", params={"toSessionId": target, "status": "pending"}))
    assert none == {"items": []}
    error_of(bus.rest.get("/api/v1/a2a/messages", params={"status": "lost"}), 400, "CONFIG_ERROR")
    error_of(bus.rest.get("/api/v1/a2a/messages", params={"cursor": "bm9wZQ"}), 400, "CONFIG_ERROR")


# ---- the dead-letter queue ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_failing_delivery_is_dead_lettered_after_max_attempts(bus: Bus, transport: str) -> None:
    source, target = new_session(), new_session()
    sent = bus.send(transport, fromSessionId=source, toSessionId=target, input="doomed", metadata=FAIL, maxAttempts=3)
    dead = settled(bus, sent["id"], "dead-lettered")
    assert (dead["attempts"], dead["maxAttempts"]) == (3, 3)
    assert dead["lastError"]["code"] == "PROVIDER_ERROR"
    runs = bus.runs_in(target)
    assert len(runs) == 3 and dead["runId"] == runs[-1]  # one run per attempt, each failed
    for run_id in runs:
        assert ok_data(bus.rest.get(f"/api/v1/runs/{run_id}"))["status"] == "failed"

    [item] = [i for i in bus.dead_letters("pending") if i["id"] == sent["id"]]
    assert set(item) == {"id", "status", "createdAt", "updatedAt", "payload", "reason"}
    assert item["status"] == "pending"
    assert item["payload"] == {
        "messageId": sent["id"],
        "fromSessionId": source,
        "toSessionId": target,
        "input": "doomed",
        "metadata": FAIL,
        "provider": "mock",
        "model": "default",
        "attempts": 3,
        "maxAttempts": 3,
        "requeues": 0,
        "runId": runs[-1],
        "lastError": dead["lastError"],
        "traceId": sent["traceId"],
    }
    assert item["reason"].startswith(f"Delivery to session '{target}' failed 3 time(s) (maxAttempts 3)")
    assert "PROVIDER_ERROR" in item["reason"]

    failed = bus.events(target, "a2a.message.failed")
    assert [(e["payload"]["attempt"], e["payload"]["deadLettered"]) for e in failed] == [
        (1, False),
        (2, False),
        (3, True),
    ]
    assert {e["traceId"] for e in failed} == {sent["traceId"]}
    assert failed[-1]["payload"]["error"] == dead["lastError"]
    assert "nextAttemptAt" in failed[0]["payload"] and "nextAttemptAt" not in failed[-1]["payload"]


def test_dlq_lists_by_status_oldest_first_with_cursor_pages(bus: Bus) -> None:
    ids = [dead_letter(bus, metadata=FAIL, maxAttempts=1)["id"] for _ in range(3)]
    paged: list[str] = []
    cursor = None
    while True:
        params = {"status": "pending", "limit": 1, **({"cursor": cursor} if cursor else {})}
        page = ok_data(bus.rest.get("/api/v1/a2a/dlq", params=params))
        assert len(page["items"]) == 1
        paged += [i["id"] for i in page["items"]]
        cursor = page.get("nextCursor")
        if not cursor:
            break
    mine = [i for i in paged if i in ids]
    assert mine == ids  # oldest first, each once
    assert len(paged) == len(set(paged))

    bus.discard("rest", ids[0])
    assert ids[0] in [i["id"] for i in bus.dead_letters("discarded")]
    assert ids[0] not in [i["id"] for i in bus.dead_letters("pending")]
    assert ids[0] not in [i["id"] for i in bus.dead_letters("requeued")]
    assert {i["id"] for i in bus.dead_letters()} >= set(ids)

    err = error_of(bus.rest.get("/api/v1/a2a/dlq", params={"status": "bogus"}), 400, "CONFIG_ERROR")
    assert err["message"] == "a2a.dlq.status must be pending|requeued|discarded."
    method = method_named("A2aDlqService.ListA2aDlqItems")
    assert call_grpc(bus.channel, method, request_of(method, status="bogus"), {}).code == "CONFIG_ERROR"
    error_of(bus.rest.get("/api/v1/a2a/dlq", params={"cursor": "!!"}), 400, "CONFIG_ERROR")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_discard_is_final_and_idempotent(bus: Bus, transport: str) -> None:
    dead = dead_letter(bus, transport, metadata=FAIL, maxAttempts=1)
    target = dead["toSessionId"]
    answer = bus.discard(transport, dead["id"], "obsolete request")
    assert answer["updated"] is True
    assert (answer["item"]["id"], answer["item"]["status"]) == (dead["id"], "discarded")
    assert bus.get(dead["id"])["status"] == "discarded"
    [event] = bus.events(target, "a2a.dlq.discarded")
    assert event["payload"] == {"id": dead["id"], "auditNote": "obsolete request"}

    again = bus.discard(transport, dead["id"])
    assert again["updated"] is False and again["item"] == answer["item"]
    assert len(bus.events(target, "a2a.dlq.discarded")) == 1

    # A discarded letter cannot come back.
    if transport == "rest":
        err = error_of(bus.rest.post(f"/api/v1/a2a/dlq/{dead['id']}/requeue", json={}), 400, "CONFIG_ERROR")
        assert "discarded" in err["message"]
    else:
        with pytest.raises(grpc.RpcError) as exc:
            bus.dlq.RequeueA2aDlqItem(a2a_dlq_pb2.RequeueA2aDlqItemRequest(id=dead["id"]))
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bus.get(dead["id"])["status"] == "discarded"
    assert len(bus.runs_in(target)) == 1  # the one failed attempt, nothing since
    assert bus.events(target, "a2a.dlq.requeued") == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_requeue_redelivers_once_the_target_accepts_again(bus: Bus, transport: str) -> None:
    """The target refuses while the policy's daily cost budget is 0 (every run refused before it exists);
    after the operator fixes the policy, a requeue delivers the message, once."""
    ok_data(bus.rest.put("/api/v1/policy", json={"schemaVersion": 1, "costBudgetDailyUsd": 0}))
    try:
        dead = dead_letter(bus, transport)  # maxAttempts from the setting: 2
    finally:
        ok_data(bus.rest.put("/api/v1/policy", json={"schemaVersion": 1}))
    target = dead["toSessionId"]
    assert (dead["attempts"], dead["lastError"]["code"]) == (2, "POLICY_COST_BUDGET_EXCEEDED")
    assert "runId" not in dead and bus.runs_in(target) == []  # refused at admission: no run existed

    answer = bus.requeue(transport, dead["id"], note="  budget restored  ")
    assert answer["updated"] is True
    item = answer["item"]
    assert (item["id"], item["status"]) == (dead["id"], "requeued")
    assert item["payload"]["lastError"]["code"] == "POLICY_COST_BUDGET_EXCEEDED"
    [event] = bus.events(target, "a2a.dlq.requeued")
    assert event["payload"] == {"id": dead["id"], "auditNote": "budget restored"}  # the operator's note, trimmed

    delivered = settled(bus, dead["id"], "delivered")
    assert (delivered["attempts"], delivered["requeues"]) == (1, 1)
    assert bus.runs_in(target) == [delivered["runId"]]

    # Repeating the requeue changes nothing and delivers nothing more.
    again = bus.requeue(transport, dead["id"])
    assert again["updated"] is False and again["item"]["status"] == "requeued"
    assert dead["id"] in [i["id"] for i in bus.dead_letters("requeued")]
    if transport == "rest":
        err = error_of(bus.rest.post(f"/api/v1/a2a/dlq/{dead['id']}/discard", json={}), 400, "CONFIG_ERROR")
        assert "requeued" in err["message"]
    assert bus.runs_in(target) == [delivered["runId"]]
    assert len(bus.events(target, "a2a.message.delivered")) == 1


def test_a_requeued_message_that_fails_again_is_pending_in_the_dlq_again(bus: Bus) -> None:
    dead = dead_letter(bus, metadata=FAIL, maxAttempts=1)
    assert bus.requeue("rest", dead["id"])["updated"] is True
    wait_until(
        lambda: bus.get(dead["id"])["status"] == "dead-lettered" and bus.get(dead["id"])["requeues"] == 1,
        "the second dead-lettering",
    )
    [item] = [i for i in bus.dead_letters("pending") if i["id"] == dead["id"]]
    assert (item["payload"]["requeues"], item["payload"]["attempts"]) == (1, 1)
    assert len(bus.runs_in(dead["toSessionId"])) == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("rpc", "fields"),
    [
        ("A2aDlqService.RequeueA2aDlqItem", {"id": "a2a_missing"}),
        ("A2aDlqService.DiscardA2aDlqItem", {"id": "a2a_missing", "auditNote": "x"}),
        ("A2aService.GetA2aMessage", {"id": "a2a_missing"}),
    ],
)
def test_unknown_ids_are_not_found(bus: Bus, transport: str, rpc: str, fields: dict[str, Any]) -> None:
    method = method_named(rpc)
    request = request_of(method, **fields)
    if transport == "rest":
        outcome = call_rest(bus.rest, method, request, {})
        assert outcome.status == 404
    else:
        outcome = call_grpc(bus.channel, method, request, {})
    assert outcome.code == "NOT_FOUND"
    assert "a2a_missing" in outcome.message


def test_capabilities_report_the_bus(bus: Bus) -> None:
    assert ok_data(bus.rest.get("/api/v1/capabilities"))["supportsA2ABus"] is True


# ---- two replicas on one PostgreSQL ------------------------------------------------------------------


def test_two_replicas_deliver_each_message_once_and_requeue_it_once(postgres_cluster: str, tmp_path: Path) -> None:
    with servers_on_one_database(postgres_cluster, tmp_path, env=BUS_ENV) as (a, b):
        with httpx.Client(base_url=a.rest_url, timeout=60) as ca, httpx.Client(base_url=b.rest_url, timeout=60) as cb:
            assert ok_data(ca.get("/api/v1/capabilities"))["stateStore"] == "postgresql"
            replicas = [
                Bus(a, ca, grpc.insecure_channel(a.grpc_target)),
                Bus(b, cb, grpc.insecure_channel(b.grpc_target)),
            ]
            try:
                _deliver_once(replicas)
                _requeue_once(replicas)
            finally:
                for replica in replicas:
                    replica.channel.close()


def _deliver_once(replicas: list[Bus]) -> None:
    """Many messages sent through both replicas, both dispatching: each becomes exactly one run."""
    sent: list[dict[str, Any]] = []

    def send(i: int) -> dict[str, Any]:
        return replicas[i % 2].send("rest", fromSessionId="pg-src", toSessionId=new_session(), input=f"n{i}")

    with ThreadPoolExecutor(8) as pool:
        sent = list(pool.map(send, range(40)))
    for message in sent:
        delivered = settled(replicas[0], message["id"], "delivered")
        assert delivered["attempts"] == 1, delivered
        target = message["toSessionId"]
        assert replicas[1].runs_in(target) == [delivered["runId"]]
        assert len(replicas[1].events(target, "a2a.message.delivered")) == 1


def _requeue_once(replicas: list[Bus]) -> None:
    """A dead letter requeued through both replicas at the same moment is requeued, and delivered, once."""
    first, second = replicas
    ok_data(first.rest.put("/api/v1/policy", json={"schemaVersion": 1, "costBudgetDailyUsd": 0}))
    try:
        dead = dead_letter(first, maxAttempts=1)
    finally:
        ok_data(second.rest.put("/api/v1/policy", json={"schemaVersion": 1}))
    start = threading.Barrier(2)

    def requeue(replica: Bus) -> dict[str, Any]:
        start.wait()
        return replica.requeue("rest", dead["id"])

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(requeue, replicas))
    assert sorted(a["updated"] for a in answers) == [False, True], answers
    assert {a["item"]["status"] for a in answers} == {"requeued"}
    delivered = settled(second, dead["id"], "delivered")
    assert (delivered["requeues"], delivered["attempts"]) == (1, 1)
    target = dead["toSessionId"]
    assert first.runs_in(target) == [delivered["runId"]]
    assert len(first.events(target, "a2a.dlq.requeued")) == 1


# ---- a server stopping or dying mid-delivery ---------------------------------------------------------


@pytest.mark.parametrize(("sig", "attempts"), [(signal.SIGTERM, 1), (signal.SIGKILL, 2)], ids=["stop", "crash"])
def test_a_delivery_interrupted_by_its_server_is_delivered_by_the_next(
    tmp_path: Path, sig: signal.Signals, attempts: int
) -> None:
    """A stopping server hands its attempt back uncounted; a crashed one's attempt is counted as failed by the
    reaper of the next start. Either way the message is delivered afterwards, by one run that succeeds."""
    # The delivery's run lasts long enough that the server certainly stops while it runs.
    slow = {"mock.delayMs": "5000"}
    with running_api(tmp_path, env=BUS_ENV) as first:
        with (
            httpx.Client(base_url=first.rest_url, timeout=60) as client,
            grpc.insecure_channel(first.grpc_target) as channel,
        ):
            bus = Bus(first, client, channel)
            target = new_session()
            sent = bus.send("rest", fromSessionId=new_session(), toSessionId=target, input="slow", metadata=slow)
            settled(bus, sent["id"], "delivering")
            wait_until(lambda: bus.runs_in(target), "the delivery run")
        first.stop(sig)
    with (
        running_api(tmp_path, env=BUS_ENV) as second,
        httpx.Client(base_url=second.rest_url, timeout=60) as client,
        grpc.insecure_channel(second.grpc_target) as channel,
    ):
        bus = Bus(second, client, channel)
        delivered = settled(bus, sent["id"], "delivered")
        assert delivered["attempts"] == attempts
        runs = bus.runs_in(target)
        assert len(runs) == 2 and delivered["runId"] == runs[-1]
        statuses = [ok_data(client.get(f"/api/v1/runs/{r}"))["status"] for r in runs]
        assert statuses == ["cancelled" if sig == signal.SIGTERM else "failed", "succeeded"]
