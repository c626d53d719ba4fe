"""OAuth 2.1 for the /mcp endpoint, so that ChatGPT and Claude can add it as a connector.

The service is its own authorization server, for the people who hold its keys:

    discovery.py    RFC 9728 protected-resource and RFC 8414 server metadata, the 401 challenge
    redirects.py    which redirect URIs a client may register (an allowlist, checked at /register)
    identity.py     who a pasted key is, at consent, and whether it is still good, on every use
    grants.py       clients, pending consents, codes, tokens and token families in the store
    provider.py     the `mcp` SDK's provider interface over `grants` (its handlers do the HTTP)
    consent.py      the consent page: names the client and its host, asks for a key
    routes.py       the routes, the SDK imported on their first request
    bearer.py       an access token presented at /mcp: found, live, ours, its key still good

Only SHA-256 digests of codes and tokens are stored, through the store's key-value space, so
any process or Lambda instance can redeem what another issued. Nothing here names a connector.
"""
