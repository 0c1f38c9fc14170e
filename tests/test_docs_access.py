"""The README's table of roles is the contract's: it lists every RPC with the role and rate class its
options declare, so the documentation cannot drift from what the gate enforces."""

from __future__ import annotations

from athena_client.contract import method_access, rate_class_name, role_name, services
from athena_gateway.routes import build_routes
from tests.support.processes import ROOT


def role_table() -> str:
    routes: dict[str, list[str]] = {}
    for spec in build_routes():
        routes.setdefault(spec.method.full_name, []).append(f"`{spec.http_method} {spec.path}`")
    lines = ["| RPC | REST | role | rate class |", "|---|---|---|---|"]
    for service in services():
        for method in service.methods:
            access = method_access(method)
            rest = "<br>".join(sorted(routes[method.full_name]))
            lines.append(
                f"| `{service.name}.{method.name}` | {rest} | {role_name(access.role)} "
                f"| {rate_class_name(access.rate_class)} |"
            )
    return "\n".join(lines)


def test_readme_lists_the_role_of_every_rpc() -> None:
    readme = (ROOT / "README.md").read_text()
    table = role_table()
    assert table in readme, "README.md's role table is out of date; it should read:\n\n" + table
