"""The store's backends, one module each, behind `app.store.Store` (see `app.store.open_store`).

    sqlite.py     the default: one file on one host (stdlib sqlite3, WAL)
    redis.py      several hosts (redis-py asyncio, one Lua script per admission)
    dynamodb.py   AWS Lambda (conditional updates; dynamodb_api.py: its API, on http1.py)
    http1.py      HTTP/1.1 POSTs to one origin over asyncio streams (DynamoDB's wire)
    limiter.py    the arithmetic they share: GCRA in microseconds, UTC day and month

Each backend is imported only when its URL is opened, so a Lambda on DynamoDB never
imports redis, and a server on SQLite never imports boto3. Nor does the DynamoDB store,
given credentials in the environment (app/aws.py; botocore's chain otherwise).
"""
