"""HTTP layer only: parse, call one service, shape the response. The only place FastAPI is imported."""
