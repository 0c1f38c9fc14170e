"""The gate every RPC passes, as plain logic against a real SQLite store: which RPCs it decides, who the
caller is and whether the role suffices, which refusals are recorded as `authz.denied` events (and with
what), which address a caller is counted against, and the rate limiter's refusals. Each `admit` runs in a
task of its own, so the caller it sets never leaks into other tests."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Iterable
from typing import Any

import pytest
from sqlalchemy import select

from athena.v1 import options_pb2
from athena_client.contract import method_access, services
from athena_server.access.caller import ANONYMOUS, AuthzDenied, Caller, current_caller
from athena_server.access.config import AuthConfigError, token_digest
from athena_server.access.gate import (
    DENIED_EVENT,
    Gate,
    MethodRule,
    _networks,
    check_settings,
    method_rules,
    peer_address,
)
from athena_server.access.identity import AuthFailed
from athena_server.access.rate_limits import RateLimitConfig, RateLimiter, load_rate_limits
from athena_server.config import Settings
from athena_server.errors import AthenaError, ErrorCode
from athena_server.storage.store import Store
from athena_server.storage.tables import events

Role = options_pb2.Role
VIEWER, OPERATOR, ADMIN = Role.ROLE_VIEWER, Role.ROLE_OPERATOR, Role.ROLE_ADMIN
READ, RUN_START, WRITE = options_pb2.RATE_CLASS_READ, options_pb2.RATE_CLASS_RUN_START, options_pb2.RATE_CLASS_WRITE

PUT_POLICY = "/athena.v1.PolicyService/PutPolicy"  # Admin, write
GET_RUN = "/athena.v1.RunService/GetRun"  # Viewer, read
CREATE_RUN = "/athena.v1.RunService/CreateRun"  # Operator, run-start
HEALTH = "/athena.v1.SystemService/GetHealth"  # public


class Context:
    """What the gate reads of a gRPC call's context: its peer."""

    def __init__(self, peer: str | None) -> None:
        self._peer = peer

    def peer(self) -> str | None:
        return self._peer


def gate(store: Store, **values: Any) -> Gate:
    return Gate(Settings(**values), store)


async def admit(
    g: Gate, method: str, metadata: Iterable[tuple[str, str | bytes]] = (), peer: str | None = "ipv4:10.1.2.3:5555"
) -> tuple[Caller, Caller]:
    """The admitted caller, and the request's caller as code further in sees it."""

    async def call() -> tuple[Caller, Caller]:
        caller = await g.admit(method, Context(peer), list(metadata))  # type: ignore[arg-type]
        return caller, current_caller()

    return await asyncio.create_task(call())


async def denied_events(store: Store) -> list[tuple[dict[str, Any], str | None]]:
    def unit(conn: Any) -> list[tuple[dict[str, Any], str | None]]:
        rows = conn.execute(select(events).where(events.c.type == DENIED_EVENT).order_by(events.c.seq)).all()
        return [(r.payload, r.actor) for r in rows]

    return await store.read(unit)


def tokens(*entries: tuple[str, str, str, str]) -> str:
    return ",".join(f"{n}:{i}:{r}:{token_digest(t).hex()}" for n, i, r, t in entries)


# ---- the rules and the parsing they need ----------------------------------------------------------------


def test_every_rpc_of_the_contract_has_a_rule_keyed_by_its_grpc_path() -> None:
    rules = method_rules()
    expected = {
        f"/{s.full_name}/{m.name}": (method_access(m), f"{s.name}.{m.name}") for s in services() for m in s.methods
    }
    assert {k: (r.access, r.operation) for k, r in rules.items()} == expected
    assert rules[PUT_POLICY] == MethodRule(method_access_of("PolicyService", "PutPolicy"), "PolicyService.PutPolicy")
    assert (rules[PUT_POLICY].access.role, rules[PUT_POLICY].access.rate_class) == (ADMIN, WRITE)


def method_access_of(service: str, method: str) -> Any:
    (found,) = [method_access(m) for s in services() if s.name == service for m in s.methods if m.name == method]
    return found


def test_trusted_proxy_networks_parse_or_name_the_bad_entry() -> None:
    assert _networks("") == ()
    assert _networks(" 10.0.0.1/8 , ,::1,192.168.1.7") == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("192.168.1.7/32"),
    )
    with pytest.raises(ValueError) as err:
        _networks("10.0.0.1, proxy.local")
    assert str(err.value) == "ATHENA_TRUSTED_PROXIES entry 'proxy.local': not an address or network."


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:127.0.0.1:5000", "127.0.0.1"),
        ("ipv6:[::1]:5000", "::1"),
        ("ipv6:[2001:db8::7]:443", "2001:db8::7"),
        ("unix:/run/athena.sock", "unix:/run/athena.sock"),
        ("", ""),
    ],
)
def test_peer_address(peer: str, address: str) -> None:
    assert peer_address(peer) == address


def test_check_settings_stops_start_up_on_any_bad_entry() -> None:
    check_settings(Settings(trusted_proxies="10.0.0.0/8", rate_limit_read="5/second"))
    with pytest.raises(ValueError, match="ATHENA_TRUSTED_PROXIES entry 'x'"):
        check_settings(Settings(trusted_proxies="x"))
    with pytest.raises(AuthConfigError, match="ATHENA_RATE_LIMIT_WRITE 'often'"):
        check_settings(Settings(rate_limit_write="often"))
    with pytest.raises(AuthConfigError, match="ATHENA_AUTH_IDENTITY_ROLE_MAP"):
        check_settings(Settings(auth_identity_role_map="alice:Root"))


# ---- nothing to decide ----------------------------------------------------------------------------------


async def test_without_auth_or_limits_every_call_is_anonymous(store: Store) -> None:
    g = gate(store)
    # Not even a repeated credential header is looked at.
    twice = [("authorization", "Bearer a"), ("authorization", "Bearer b")]
    for method in (PUT_POLICY, GET_RUN, HEALTH, "/grpc.health.v1.Health/Check"):
        assert await admit(g, method, twice) == (ANONYMOUS, ANONYMOUS)
    assert g.header_limits == {"x-athena-identity": 256}


async def test_public_and_foreign_rpcs_pass_without_credentials(store: Store) -> None:
    g = gate(store, auth_enabled=True, auth_identity_role_map="alice:Admin", rate_limit_read="1/hour")
    for _ in range(3):
        assert await admit(g, HEALTH) == (ANONYMOUS, ANONYMOUS)
        assert await admit(g, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo") == (ANONYMOUS, ANONYMOUS)
    assert await denied_events(store) == []


# ---- authentication and authorisation -------------------------------------------------------------------


async def test_a_caller_with_the_role_is_admitted_and_set(store: Store) -> None:
    g = gate(store, auth_enabled=True, auth_identity_role_map="alice:Admin,bob:Operator,*:Viewer")
    alice = Caller("alice", ADMIN, "header")
    assert await admit(g, PUT_POLICY, [("x-athena-identity", "alice")]) == (alice, alice)
    bob = Caller("bob", OPERATOR, "header")
    assert await admit(g, CREATE_RUN, [("x-athena-identity", "bob"), ("other", "x"), ("other", "y")]) == (bob, bob)
    carol = Caller("carol", VIEWER, "header")
    assert await admit(g, GET_RUN, [("x-athena-identity", "carol")]) == (carol, carol)
    assert await denied_events(store) == []


async def test_a_weaker_role_is_refused_and_recorded(store: Store) -> None:
    g = gate(store, auth_enabled=True, auth_identity_role_map="bob:Operator")
    with pytest.raises(AuthzDenied) as err:
        await admit(g, PUT_POLICY, [("x-athena-identity", "bob")])
    assert err.value.code == ErrorCode.ERROR_CODE_AUTHZ_DENIED
    assert (err.value.operation, err.value.required, err.value.reason) == (
        "PolicyService.PutPolicy",
        ADMIN,
        "ROLE_INSUFFICIENT",
    )
    assert err.value.caller == Caller("bob", OPERATOR, "header") and err.value.recorded is True
    assert await denied_events(store) == [
        (
            {
                "subject": "bob",
                "role": "Operator",
                "operation": "PolicyService.PutPolicy",
                "requiredRole": "Admin",
                "reason": "ROLE_INSUFFICIENT",
                "code": "AUTHZ_DENIED",
                "address": "10.1.2.3",
            },
            "bob",
        )
    ]


async def test_an_identity_without_a_role_is_refused_as_role_missing(store: Store) -> None:
    g = gate(store, auth_enabled=True, auth_identity_role_map="alice:Admin")
    with pytest.raises(AuthzDenied) as err:
        await admit(g, GET_RUN, [("x-athena-identity", "zed")], peer="ipv6:[2001:db8::1]:9")
    assert err.value.reason == "ROLE_MISSING"
    assert await denied_events(store) == [
        (
            {
                "subject": "zed",
                "role": None,
                "operation": "RunService.GetRun",
                "requiredRole": "Viewer",
                "reason": "ROLE_MISSING",
                "code": "AUTHZ_DENIED",
                "address": "2001:db8::1",
            },
            "zed",
        )
    ]


async def test_a_failed_authentication_is_refused_and_recorded(store: Store) -> None:
    g = gate(store, auth_enabled=True, auth_api_tokens=tokens(("ci", "ci-bot", "Operator", "tok")))
    with pytest.raises(AuthFailed) as err:
        await admit(g, CREATE_RUN, [("x-athena-identity", "alice")])
    assert err.value.reason == "TOKEN_MISSING"
    with pytest.raises(AuthFailed):
        await admit(g, CREATE_RUN, [("authorization", "Bearer wrong")], peer=None)
    payloads = [p for p, _ in await denied_events(store)]
    assert payloads == [
        {
            "subject": None,
            "role": None,
            "operation": "RunService.CreateRun",
            "requiredRole": "Operator",
            "reason": "TOKEN_MISSING",
            "code": "AUTH_TOKEN_MISSING",
            "address": "10.1.2.3",
        },
        {
            "subject": None,
            "role": None,
            "operation": "RunService.CreateRun",
            "requiredRole": "Operator",
            "reason": "TOKEN_INVALID",
            "code": "AUTH_TOKEN_INVALID",
            "address": "",
        },
    ]
    caller, _ = await admit(g, CREATE_RUN, [("x-athena-api-token", "tok")])
    assert caller == Caller("ci-bot", OPERATOR, "token:ci")


async def test_a_repeated_credential_header_is_refused(store: Store) -> None:
    g = gate(store, auth_enabled=True, auth_identity_role_map="*:Admin")
    for name in ("authorization", "x-athena-api-token", "x-athena-client-address", "x-athena-identity"):
        with pytest.raises(AthenaError) as err:
            await admit(g, GET_RUN, [(name, "a"), ("x-athena-identity", "alice"), (name, "b")])
        assert (err.value.code, err.value.message) == (
            ErrorCode.ERROR_CODE_CONFIG_ERROR,
            f"header '{name}' must be sent once.",
        )
    # Binary values are not credentials, and are not counted as a repeat.
    caller, _ = await admit(g, GET_RUN, [("x-athena-identity", b"mallory"), ("x-athena-identity", "alice")])
    assert caller.identity == "alice"
    assert await denied_events(store) == []


# ---- addresses and rate limits --------------------------------------------------------------------------


async def test_unauthenticated_callers_are_counted_per_address(store: Store) -> None:
    g = gate(store, rate_limit_read="2/hour")
    for _ in range(2):
        assert await admit(g, GET_RUN, peer="ipv4:10.0.0.9:1") == (ANONYMOUS, ANONYMOUS)
    with pytest.raises(AthenaError) as err:
        await admit(g, GET_RUN, peer="ipv4:10.0.0.9:2")
    assert err.value.code == ErrorCode.ERROR_CODE_RATE_LIMITED
    # Another address has its own bucket; an untrusted peer cannot claim another address.
    await admit(g, GET_RUN, peer="ipv4:10.0.0.10:1")
    await admit(g, GET_RUN, [("x-athena-client-address", "10.0.0.77")], peer="ipv4:10.0.0.10:1")
    with pytest.raises(AthenaError):
        await admit(g, GET_RUN, [("x-athena-client-address", "10.0.0.78")], peer="ipv4:10.0.0.10:1")
    # A trusted gateway (loopback by default) forwards its HTTP client's address: counted per client.
    for client in ("203.0.113.5", "203.0.113.6"):
        for _ in range(2):
            await admit(g, GET_RUN, [("x-athena-client-address", f" {client} ")], peer="ipv4:127.0.0.1:40000")
    with pytest.raises(AthenaError):
        await admit(g, GET_RUN, [("x-athena-client-address", "203.0.113.5")], peer="ipv6:[::1]:40001")
    # Other classes are not limited.
    for _ in range(3):
        await admit(g, PUT_POLICY, peer="ipv4:10.0.0.9:1")


async def test_without_auth_each_address_has_its_own_bucket(store: Store) -> None:
    g = gate(store, rate_limit_write="1/hour")
    await admit(g, PUT_POLICY, peer="ipv4:10.9.0.1:1")
    await admit(g, PUT_POLICY, peer="ipv4:10.9.0.2:1")
    with pytest.raises(AthenaError):
        await admit(g, PUT_POLICY, peer="ipv4:10.9.0.1:1")


def test_which_peers_are_trusted(store: Store) -> None:
    g = gate(store, trusted_proxies="10.0.0.0/8, ::1")
    assert g._trusted("unix:/run/athena.sock") is True
    assert (g._trusted("10.200.0.1"), g._trusted("::1"), g._trusted("11.0.0.1"), g._trusted("::2")) == (
        True,
        True,
        False,
        False,
    )
    assert g._trusted("not-an-ip") is False
    assert g._address(Context("ipv4:10.1.1.1:1"), {"x-athena-client-address": "1.2.3.4"}) == "1.2.3.4"  # type: ignore[arg-type]
    assert g._address(Context("ipv4:11.1.1.1:1"), {"x-athena-client-address": "1.2.3.4"}) == "11.1.1.1"  # type: ignore[arg-type]
    assert g._address(Context("ipv4:10.1.1.1:1"), {"x-athena-client-address": ""}) == "10.1.1.1"  # type: ignore[arg-type]
    assert g._address(Context(None), {}) == ""  # type: ignore[arg-type]
    assert g._address_key(Context("ipv4:11.1.1.1:1"), {}) == "addr:11.1.1.1"  # type: ignore[arg-type]
    nobody = gate(store, trusted_proxies="")
    assert nobody._trusted("127.0.0.1") is False and nobody._trusted("unix:/x") is True


async def test_failed_authentications_count_against_the_address_and_callers_against_their_identity(
    store: Store,
) -> None:
    g = gate(store, auth_enabled=True, auth_identity_role_map="*:Viewer", rate_limit_read="2/hour")
    for _ in range(2):
        with pytest.raises(AuthFailed):
            await admit(g, GET_RUN, peer="ipv4:10.0.0.1:1")
    # The third failure from that address is rate limited, and not recorded.
    with pytest.raises(AthenaError) as err:
        await admit(g, GET_RUN, peer="ipv4:10.0.0.1:1")
    assert err.value.code == ErrorCode.ERROR_CODE_RATE_LIMITED
    assert len(await denied_events(store)) == 2
    # An identity is counted as itself, wherever it calls from, and not as its address.
    for peer in ("ipv4:10.0.0.1:1", "ipv4:10.0.0.2:1"):
        await admit(g, GET_RUN, [("x-athena-identity", "alice")], peer=peer)
    with pytest.raises(AthenaError):
        await admit(g, GET_RUN, [("x-athena-identity", "alice")], peer="ipv4:10.0.0.3:1")
    await admit(g, GET_RUN, [("x-athena-identity", "bob")], peer="ipv4:10.0.0.3:1")


async def test_an_authenticated_caller_is_counted_before_authorisation(store: Store) -> None:
    g = gate(store, auth_enabled=True, auth_identity_role_map="bob:Viewer", rate_limit_write="1/hour")
    with pytest.raises(AuthzDenied):
        await admit(g, PUT_POLICY, [("x-athena-identity", "bob")])
    with pytest.raises(AthenaError) as err:
        await admit(g, PUT_POLICY, [("x-athena-identity", "bob")])
    assert err.value.code == ErrorCode.ERROR_CODE_RATE_LIMITED
    assert len(await denied_events(store)) == 1


async def test_record_denied_marks_the_refusal_recorded(store: Store) -> None:
    g = gate(store, auth_enabled=True)
    denied = AuthzDenied("HarnessProfileService.CreateHarnessProfile", ADMIN, Caller("ops", OPERATOR, "jwt"), "X")
    assert denied.recorded is False
    await g.record_denied(denied)
    assert denied.recorded is True
    assert await denied_events(store) == [
        (
            {
                "subject": "ops",
                "role": "Operator",
                "operation": "HarnessProfileService.CreateHarnessProfile",
                "requiredRole": "Admin",
                "reason": "X",
                "code": "AUTHZ_DENIED",
                "address": None,
            },
            None,
        )
    ]


# ---- the rate limiter -----------------------------------------------------------------------------------


def refusal(limiter: RateLimiter, key: str, rate_class: int) -> AthenaError:
    with pytest.raises(AthenaError) as err:
        limiter.hit(key, rate_class)
    return err.value


def test_each_class_takes_its_own_setting() -> None:
    config = load_rate_limits(Settings(rate_limit_run_start="1/hour", rate_limit_read=" "))
    assert config.enabled is True
    assert (config.by_class[READ], config.by_class[WRITE], len(config.by_class[RUN_START])) == ((), (), 1)
    assert load_rate_limits(Settings()).enabled is False
    for setting, name in (
        ("rate_limit_read", "ATHENA_RATE_LIMIT_READ"),
        ("rate_limit_run_start", "ATHENA_RATE_LIMIT_RUN_START"),
        ("rate_limit_write", "ATHENA_RATE_LIMIT_WRITE"),
    ):
        with pytest.raises(AuthConfigError) as err:
            load_rate_limits(Settings(**{setting: "fast"}))
        assert str(err.value) == f"{name} 'fast': expected limits such as '600/minute' or '10/second;300/hour'."
    limiter = RateLimiter(config)
    limiter.hit("k", RUN_START)
    for _ in range(3):
        limiter.hit("k", READ)
        limiter.hit("k", WRITE)
    refused = refusal(limiter, "k", RUN_START)
    assert refused.message.startswith("Rate limit exceeded: 1 run-start requests per hour; retry in ")


def test_an_unlimited_limiter_counts_nothing() -> None:
    limiter = RateLimiter(RateLimitConfig({READ: ()}))
    assert limiter._limiter is None
    for _ in range(5):
        limiter.hit("k", READ)


def test_the_refusal_carries_the_bucket_figures() -> None:
    limiter = RateLimiter(load_rate_limits(Settings(rate_limit_write="3/hour")))
    for _ in range(3):
        limiter.hit("id:a", WRITE)
    before = time.time()
    refused = refusal(limiter, "id:a", WRITE)
    assert (refused.code, refused.retryable) == (ErrorCode.ERROR_CODE_RATE_LIMITED, True)
    meta = refused.metadata
    retry = int(meta["retryAfterSeconds"])
    assert 3590 <= retry <= 3600
    assert refused.message == f"Rate limit exceeded: 3 write requests per hour; retry in {retry} s."
    assert (meta["rateLimitLimit"], meta["rateLimitRemaining"]) == ("3", "0")
    assert before + 3590 <= int(meta["rateLimitReset"]) <= before + 3601
    assert set(meta) == {"retryAfterSeconds", "rateLimitLimit", "rateLimitRemaining", "rateLimitReset"}


def test_several_limits_of_a_class_each_hold_and_name_their_window() -> None:
    limiter = RateLimiter(load_rate_limits(Settings(rate_limit_read="5/2 hours;2/day")))
    limiter.hit("k", READ)
    limiter.hit("k", READ)
    # The first limit still has room; the second is spent.
    refused = refusal(limiter, "k", READ)
    assert refused.message.startswith("Rate limit exceeded: 2 read requests per day; retry in ")
    limiter2 = RateLimiter(load_rate_limits(Settings(rate_limit_read="1/2 hours;9/day")))
    limiter2.hit("k", READ)
    assert refusal(limiter2, "k", READ).message.startswith("Rate limit exceeded: 1 read requests per 2 hours; ")


def test_a_class_without_limits_is_never_refused_and_a_short_window_retries_in_one_second() -> None:
    limiter = RateLimiter(load_rate_limits(Settings(rate_limit_read="1/second")))
    for _ in range(3):
        limiter.hit("k", options_pb2.RATE_CLASS_EXEMPT)
    limiter.hit("k", READ)
    refused = refusal(limiter, "k", READ)
    assert refused.metadata["retryAfterSeconds"] == "1"
    assert refused.message == "Rate limit exceeded: 1 read requests per second; retry in 1 s."


async def test_failed_authentications_from_different_addresses_have_their_own_buckets(store: Store) -> None:
    g = gate(store, auth_enabled=True, auth_identity_role_map="*:Viewer", rate_limit_read="1/hour")
    for peer in ("ipv4:10.8.0.1:1", "ipv4:10.8.0.2:1"):
        with pytest.raises(AuthFailed):
            await admit(g, GET_RUN, peer=peer)
    with pytest.raises(AthenaError) as err:
        await admit(g, GET_RUN, peer="ipv4:10.8.0.1:1")
    assert err.value.code == ErrorCode.ERROR_CODE_RATE_LIMITED
