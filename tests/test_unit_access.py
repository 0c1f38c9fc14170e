"""Auth configuration and authentication as plain logic: what each configuration means, and which headers
give which caller or which 401. The end-to-end matrix (every RPC, both transports) is test_e2e_access.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from athena.v1 import options_pb2
from athena_client.contract import method_access, services
from athena_server.access.caller import AuthzDenied, Caller, current_caller, require, set_caller
from athena_server.access.config import AuthConfigError, load_auth, parse_api_tokens, parse_role_map, token_digest
from athena_server.access.identity import Authenticator, AuthFailed
from athena_server.access.rate_limits import RateLimiter, load_rate_limits
from athena_server.config import Settings

Role = options_pb2.Role
VIEWER, OPERATOR, ADMIN = Role.ROLE_VIEWER, Role.ROLE_OPERATOR, Role.ROLE_ADMIN


def settings(**values: Any) -> Settings:
    return Settings(**values)


def entry(name: str, identity: str, role: str, token: str) -> str:
    return f"{name}:{identity}:{role}:{token_digest(token).hex()}"


# ---- the contract declares access for every RPC ----------------------------------------------------------


def test_every_rpc_declares_a_role_and_a_rate_class() -> None:
    declared = {f"{s.name}.{m.name}": method_access(m) for s in services() for m in s.methods}
    assert len(declared) > 40
    # The seed's enforced controls, exactly.
    assert declared["PolicyService.PutPolicy"].role == ADMIN
    for name in ("RunService.CancelRunByRunId", "RunService.CancelRunBySessionId"):
        assert declared[name].role == OPERATOR
    for rpc in ("Create", "Update", "Delete", "Enable", "Disable", "Run", "Tick"):
        name = f"ScheduleService.{rpc}Schedule" if rpc != "Tick" else "ScheduleService.TickSchedules"
        assert declared[name].role == OPERATOR, name
    public = sorted(n for n, a in declared.items() if a.role == Role.ROLE_PUBLIC)
    assert public == ["SystemService.GetAdminHealth", "SystemService.GetHealth", "SystemService.GetReadiness"]
    # Reads are Viewer: every Get/List/Stream/Search of the contract.
    for name, access in declared.items():
        verb = name.split(".")[1]
        if verb.startswith(("Get", "List", "Stream", "Search")) and access.role != Role.ROLE_PUBLIC:
            assert access.role == VIEWER, name
            assert access.rate_class == options_pb2.RATE_CLASS_READ, name


# ---- role map ------------------------------------------------------------------------------------------


def test_role_map_resolution_fails_closed() -> None:
    roles = parse_role_map("alice:Admin, bob:operator ,*:Viewer", None)
    assert (roles.role_of("alice"), roles.role_of("bob"), roles.role_of("carol")) == (ADMIN, OPERATOR, VIEWER)
    no_wildcard = parse_role_map("alice:Admin", None)
    assert no_wildcard.role_of("carol") is None  # no entry, no `*`, no default: nothing
    with_default = parse_role_map("alice:Admin", "operator")
    assert with_default.role_of("carol") == OPERATOR
    # Identities may hold colons (the role is after the last one).
    assert parse_role_map("user:alice:Admin", None).role_of("user:alice") == ADMIN


@pytest.mark.parametrize(
    ("role_map", "default", "message"),
    [
        ("alice:Root", None, "ATHENA_AUTH_IDENTITY_ROLE_MAP entry 'alice:Root': unknown role 'Root'"),
        ("alice", None, "ATHENA_AUTH_IDENTITY_ROLE_MAP entry 'alice': expected identity:Role."),
        (":Admin", None, "ATHENA_AUTH_IDENTITY_ROLE_MAP entry ':Admin': expected identity:Role."),
        ("a:Admin,a:Viewer", None, "entry 'a:Viewer': identity 'a' is mapped more than once."),
        ("", "Superuser", "ATHENA_AUTH_DEFAULT_ROLE: unknown role 'Superuser'"),
    ],
)
def test_bad_role_configuration_names_the_entry(role_map: str, default: str | None, message: str) -> None:
    with pytest.raises(AuthConfigError) as err:
        parse_role_map(role_map, default)
    assert message in str(err.value)


# ---- API tokens ------------------------------------------------------------------------------------------


def test_token_entries_hold_digests_and_never_echo_them() -> None:
    tokens = parse_api_tokens(entry("ci", "ci-bot", "Operator", "s3cret") + "," + entry("p", "*", "*", "x"), "orig")
    assert [(t.name, t.identity, t.role) for t in tokens] == [
        ("ci", "ci-bot", OPERATOR),
        ("p", "*", None),
        ("api-token", "*", None),
    ]
    digest = "ab" * 32
    with pytest.raises(AuthConfigError) as err:
        parse_api_tokens(f"ci:bot:Root:{digest}", None)
    assert digest not in str(err.value) and "'ci:bot:Root:…'" in str(err.value)
    with pytest.raises(AuthConfigError, match="SHA-256 digest"):
        parse_api_tokens("ci:bot:Admin:plaintext-token", None)
    with pytest.raises(AuthConfigError, match="used more than once"):
        parse_api_tokens(f"ci:a:Admin:{digest},ci:b:Admin:{digest}", None)


def test_bad_identity_header_and_jwt_settings_stop_start_up(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="ATHENA_AUTH_IDENTITY_HEADER 'X Identity'"):
        load_auth(settings(auth_identity_header="X Identity"))
    with pytest.raises(AuthConfigError, match="ATHENA_AUTH_IDENTITY_HEADER 'authorization'"):
        load_auth(settings(auth_identity_header="authorization"))
    with pytest.raises(AuthConfigError, match="ATHENA_AUTH_JWT_KEY_FILE: cannot read"):
        load_auth(settings(auth_jwt_key_file=tmp_path / "missing.pem"))
    (tmp_path / "k.pem").write_text("x")
    with pytest.raises(AuthConfigError, match="ATHENA_AUTH_JWT_ALGORITHMS entry 'none'"):
        load_auth(settings(auth_jwt_key_file=tmp_path / "k.pem", auth_jwt_algorithms="none"))
    (tmp_path / "jwks.json").write_text('{"keys": "nope"}')
    with pytest.raises(AuthConfigError, match="ATHENA_AUTH_JWT_JWKS_FILE: not a usable JWKS document"):
        load_auth(settings(auth_jwt_jwks_file=tmp_path / "jwks.json"))
    with pytest.raises(AuthConfigError, match="ATHENA_RATE_LIMIT_READ 'lots'"):
        load_rate_limits(settings(rate_limit_read="lots"))


# ---- authentication --------------------------------------------------------------------------------------


def authenticator(**values: Any) -> Authenticator:
    return Authenticator(load_auth(settings(auth_enabled=True, **values)))


def refusal(auth: Authenticator, headers: dict[str, str]) -> tuple[str, str, str]:
    with pytest.raises(AuthFailed) as err:
        auth.authenticate(headers)
    return err.value.code_name, err.value.message, err.value.reason


def test_trusted_header_mode() -> None:
    auth = authenticator(auth_identity_role_map="alice:Admin,*:Viewer")
    assert auth.authenticate({"x-athena-identity": "alice"}) == Caller("alice", ADMIN, "header")
    # The first non-empty comma-separated value is the subject (a proxy appends).
    assert auth.authenticate({"x-athena-identity": " , bob, alice"}) == Caller("bob", VIEWER, "header")
    assert refusal(auth, {}) == (
        "AUTH_IDENTITY_MISSING",
        "Missing required header: x-athena-identity.",
        "IDENTITY_MISSING",
    )
    assert refusal(auth, {"x-athena-identity": " , "})[0] == "AUTH_IDENTITY_MISSING"
    # A token sent to a server without tokens is not a credential: the header decides.
    assert auth.authenticate({"x-athena-identity": "alice", "authorization": "Bearer x"}).identity == "alice"
    custom = authenticator(auth_identity_header="x-user", auth_default_role="Operator")
    assert custom.authenticate({"x-user": "zed"}) == Caller("zed", OPERATOR, "header")
    assert refusal(custom, {"x-athena-identity": "zed"})[1] == "Missing required header: x-user."


def test_api_tokens() -> None:
    tokens = ",".join([entry("ci", "ci-bot", "Operator", "tok-ci"), entry("proxy", "*", "*", "tok-proxy")])
    auth = authenticator(auth_api_tokens=tokens, auth_identity_role_map="alice:Admin")
    assert auth.authenticate({"authorization": "Bearer tok-ci"}) == Caller("ci-bot", OPERATOR, "token:ci")
    assert auth.authenticate({"x-athena-api-token": "tok-ci"}) == Caller("ci-bot", OPERATOR, "token:ci")
    # A proxy token lets the identity header name the caller; its role comes from the map.
    proxied = auth.authenticate({"authorization": "bearer tok-proxy", "x-athena-identity": "alice"})
    assert proxied == Caller("alice", ADMIN, "token:proxy")
    assert refusal(auth, {"authorization": "Bearer tok-proxy"})[0] == "AUTH_IDENTITY_MISSING"
    # With tokens configured the header alone is not enough.
    assert refusal(auth, {"x-athena-identity": "alice"}) == (
        "AUTH_TOKEN_MISSING",
        "Missing API token: send 'Authorization: Bearer <token>' or 'x-athena-api-token'.",
        "TOKEN_MISSING",
    )
    assert refusal(auth, {"authorization": "Bearer tok-other"}) == (
        "AUTH_TOKEN_INVALID",
        "Invalid API token.",
        "TOKEN_INVALID",
    )
    assert refusal(auth, {"authorization": "Basic YWxpY2U6cHc="})[1] == (
        "The Authorization header must be 'Bearer <token>'."
    )
    # ...unless the operator says the header is trusted (a proxy that strips and sets it).
    trusting = authenticator(auth_api_tokens=tokens, auth_trust_identity_header=True, auth_default_role="Viewer")
    assert trusting.authenticate({"x-athena-identity": "dan"}) == Caller("dan", VIEWER, "header")
    # The original's single shared token is a proxy token.
    original = authenticator(auth_api_token="shared", auth_identity_role_map="*:Operator")
    assert original.authenticate({"x-athena-api-token": "shared", "x-athena-identity": "eve"}) == Caller(
        "eve", OPERATOR, "token:api-token"
    )


@pytest.fixture(scope="module")
def rsa_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    folder = tmp_path_factory.mktemp("jwt")
    pem = folder / "public.pem"
    pem.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = folder / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}))
    return key, pem, jwks


def token(key: Any, kid: str | None = "k1", **claims: Any) -> str:
    body = {"sub": "alice", "exp": int(time.time()) + 300, **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid} if kid else None)


def test_jwt_bearer_tokens(rsa_keys: tuple[Any, Path, Path]) -> None:
    key, pem, jwks = rsa_keys
    for source in ({"auth_jwt_key_file": pem}, {"auth_jwt_jwks_file": jwks}):
        auth = authenticator(**source, auth_identity_role_map="alice:Operator", auth_jwt_audience="athena")
        assert auth.authenticate({"authorization": f"Bearer {token(key, aud='athena')}"}) == Caller(
            "alice", OPERATOR, "jwt"
        )
        # The role claim wins over the map; a list takes the strongest role it names.
        with_role = token(key, aud="athena", role=["viewer", "Admin", "bogus"])
        assert auth.authenticate({"authorization": f"Bearer {with_role}"}).role == ADMIN
        # A role claim that names no role grants none (fail closed), not the map's.
        assert auth.authenticate({"authorization": f"Bearer {token(key, aud='athena', role='root')}"}).role is None
        expired = token(key, aud="athena", exp=int(time.time()) - 3600)
        assert refusal(auth, {"authorization": f"Bearer {expired}"}) == (
            "AUTH_TOKEN_INVALID",
            "Invalid bearer token: Signature has expired.",
            "TOKEN_INVALID",
        )
        assert refusal(auth, {"authorization": f"Bearer {token(key, aud='other')}"})[1] == (
            "Invalid bearer token: Audience doesn't match."
        )
        forged = token(rsa.generate_private_key(public_exponent=65537, key_size=2048), aud="athena")
        assert refusal(auth, {"authorization": f"Bearer {forged}"})[0] == "AUTH_TOKEN_INVALID"
        unsigned = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60, "aud": "athena"}, None, algorithm="none")
        assert refusal(auth, {"authorization": f"Bearer {unsigned}"})[0] == "AUTH_TOKEN_INVALID"
        no_exp = jwt.encode({"sub": "alice", "aud": "athena"}, key, algorithm="RS256", headers={"kid": "k1"})
        assert refusal(auth, {"authorization": f"Bearer {no_exp}"})[1] == (
            'Invalid bearer token: Token is missing the "exp" claim.'
        )
    by_kid = authenticator(auth_jwt_jwks_file=jwks)
    assert refusal(by_kid, {"authorization": f"Bearer {token(key, kid='k9')}"})[1] == (
        "Invalid bearer token: no configured key matches its 'kid'."
    )


# ---- authorisation helper for checks that depend on the request -----------------------------------------


def test_require_checks_the_current_caller_only_with_auth_on() -> None:
    require(ADMIN, "anything")  # auth off: the anonymous caller is not checked
    try:
        set_caller(Caller("bob", OPERATOR, "header"))
        require(OPERATOR, "x")
        with pytest.raises(AuthzDenied) as err:
            require(ADMIN, "HarnessProfileService.CreateHarnessProfile")
        assert err.value.code_name == "AUTHZ_DENIED"
        assert err.value.message == "Forbidden: HarnessProfileService.CreateHarnessProfile requires role Admin."
        set_caller(Caller("eve", None, "header"))
        with pytest.raises(AuthzDenied) as err:
            require(VIEWER, "FleetService.GetFleetSummary")
        assert err.value.reason == "ROLE_MISSING"
        assert err.value.message == (
            "Forbidden: FleetService.GetFleetSummary requires role Viewer, Operator or Admin. "
            "No role is granted to identity 'eve'."
        )
    finally:
        set_caller(Caller(None, None))
    assert current_caller().enforced is False


# ---- rate limits -----------------------------------------------------------------------------------------


def test_rate_limit_refusal_carries_retry_figures() -> None:
    limiter = RateLimiter(load_rate_limits(settings(rate_limit_write="2/minute")))
    limiter.hit("id:a", options_pb2.RATE_CLASS_WRITE)
    limiter.hit("id:a", options_pb2.RATE_CLASS_WRITE)
    limiter.hit("id:b", options_pb2.RATE_CLASS_WRITE)  # another caller has its own bucket
    for _ in range(3):
        limiter.hit("id:a", options_pb2.RATE_CLASS_READ)  # and another class is not limited
    with pytest.raises(Exception) as err:
        limiter.hit("id:a", options_pb2.RATE_CLASS_WRITE)
    refused: Any = err.value
    assert refused.code_name == "RATE_LIMITED" and refused.retryable is True
    assert refused.message.startswith("Rate limit exceeded: 2 write requests per minute; retry in ")
    meta = refused.metadata
    assert 1 <= int(meta["retryAfterSeconds"]) <= 60
    assert (meta["rateLimitLimit"], meta["rateLimitRemaining"]) == ("2", "0")
    assert abs(int(meta["rateLimitReset"]) - time.time() - int(meta["retryAfterSeconds"])) <= 2


# ---- edges of the credentials (each pins a decision the mutation run showed untested) -------------------


def test_credential_header_edges() -> None:
    tokens = entry("ci", "ci-bot", "Operator", "tok-ci")
    auth = authenticator(auth_api_tokens=tokens, auth_identity_role_map="*:Viewer")
    # The scheme is the first word: a token with a space is a wrong token, not a wrong scheme.
    assert refusal(auth, {"authorization": "Bearer tok ci"})[1] == "Invalid API token."
    assert refusal(auth, {"x-athena-api-token": "  "})[1:] == (
        "The x-athena-api-token header is empty.",
        "TOKEN_INVALID",
    )
    # A token shaped like a JWT is an API token when no JWT key is configured.
    assert refusal(auth, {"authorization": "Bearer a.b.c"})[1] == "Invalid API token."
    header = authenticator(auth_identity_role_map="*:Viewer")
    assert refusal(header, {"x-athena-identity": " , "})[1] == "Missing required header: x-athena-identity."
    # The identity header holds at most 256 characters.
    assert header.authenticate({"x-athena-identity": "a" * 256}).identity == "a" * 256
    with pytest.raises(Exception) as err:
        header.authenticate({"x-athena-identity": "a" * 257})
    failed: Any = err.value
    assert not isinstance(failed, AuthFailed)
    assert (failed.code_name, failed.message) == (
        "CONFIG_ERROR",
        "header 'x-athena-identity' must be at most 256 characters.",
    )


def test_jwt_claim_and_key_edges(rsa_keys: tuple[Any, Path, Path]) -> None:
    key, pem, jwks = rsa_keys
    # One key in the JWKS: a token without `kid` is verified with it.
    by_jwks = authenticator(auth_jwt_jwks_file=jwks, auth_identity_role_map="alice:Operator")
    assert by_jwks.authenticate({"authorization": f"Bearer {token(key, kid=None)}"}) == Caller("alice", OPERATOR, "jwt")
    code, message, _ = refusal(by_jwks, {"authorization": "Bearer not.a.jwt"})
    assert (
        code == "AUTH_TOKEN_INVALID"
        and message.startswith("Invalid bearer token: ")
        and message != ("Invalid bearer token: no configured key matches its 'kid'.")
    )
    auth = authenticator(
        auth_jwt_key_file=pem, auth_jwt_issuer="https://issuer", auth_identity_role_map="alice:Operator"
    )
    ok = token(key, iss="https://issuer")
    assert auth.authenticate({"authorization": f"Bearer {ok}"}).identity == "alice"
    assert refusal(auth, {"authorization": f"Bearer {token(key, iss='https://other')}"})[1] == (
        "Invalid bearer token: Invalid issuer."
    )
    # A single role name as the claim.
    assert auth.authenticate({"authorization": f"Bearer {token(key, iss='https://issuer', role='Admin')}"}).role == (
        ADMIN
    )
    # Expired 10 s ago: inside the default 30 s leeway.
    recent = token(key, iss="https://issuer", exp=int(time.time()) - 10)
    assert auth.authenticate({"authorization": f"Bearer {recent}"}).identity == "alice"
    bad_identity = "Invalid bearer token: claim 'sub' must name the caller."
    for sub in ("   ", "a" * 257):
        assert refusal(auth, {"authorization": f"Bearer {token(key, iss='https://issuer', sub=sub)}"})[1] == (
            bad_identity
        )
    assert auth.authenticate({"authorization": f"Bearer {token(key, iss='https://issuer', sub='b' * 256)}"})
    no_sub = jwt.encode({"exp": int(time.time()) + 60, "iss": "https://issuer"}, key, algorithm="RS256")
    assert refusal(auth, {"authorization": f"Bearer {no_sub}"})[1] == bad_identity


def test_require_default_reason_is_role_insufficient() -> None:
    try:
        set_caller(Caller("bob", OPERATOR, "header"))
        with pytest.raises(AuthzDenied) as err:
            require(ADMIN, "x")
        assert err.value.reason == "ROLE_INSUFFICIENT"
        with pytest.raises(AuthzDenied) as err:
            require(ADMIN, "x", "COMMAND_PROFILE")
        assert err.value.reason == "COMMAND_PROFILE"
    finally:
        set_caller(Caller(None, None))
