"""The web stack's ceiling: FastAPI answering a constant JSON (uvicorn, uvloop, httptools)."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.post("/predict")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
