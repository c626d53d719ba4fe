"""Cold-start baseline: the smallest FastAPI app on Mangum, answering one JSON route."""

from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()


@app.get("/hello")
def hello() -> dict[str, str]:
    return {"hello": "world"}


handler = Mangum(app, lifespan="off")
