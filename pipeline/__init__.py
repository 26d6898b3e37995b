"""One frame's path, the same for HTTP and the WebSocket: admission -> models -> session update ->
response (`pipeline.frame`), the model stages behind their deadline (`pipeline.models`), and the
answer built in one pure function (`pipeline.response`)."""
