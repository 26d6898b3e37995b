"""The HTTP and WebSocket API: the FastAPI app, its routes by concern, schemas, auth dependencies
and the error table. Handlers stay a few lines: the work is in `pipeline/` and `sessions/`."""
