"""OAuth 2.1 for the /mcp endpoint, so that ChatGPT and Claude can add it as a connector.

The service is its own authorization server, for the people who hold its keys:

    discovery.py    the 401 challenge, RFC 9728 resource and RFC 8414 server metadata
    redirects.py    which redirect URIs a client may register (an allowlist, checked at /register)
    identity.py     who a pasted key is, at consent, and its caller on every later use
    grants.py       clients, pending consents, codes, tokens and token families in the store
    records.py      what those are made of
    provider.py     the `mcp` SDK's provider interface over `grants` (its handlers do the HTTP)
    consent.py      the consent page: names the client and its host, asks for a key
    attempts.py     wrong keys on the consent page, counted per address
    routes.py       the routes; the SDK is imported on the first request of one of its handlers
    server.py       `OAuthServer`: the above for one app, and the bearer check for /mcp

Only SHA-256 digests of codes and tokens are stored, through the store's key-value space, so
any process or Lambda instance can redeem what another issued. Nothing here names a connector.
"""
