"""Who may call what: identities (trusted header, API tokens, JWT), the role each RPC declares in the
contract, rate limits, and the `authz.denied` audit trail. One gate in the server's interceptor applies it
to every RPC, so gRPC and REST callers are decided identically."""
