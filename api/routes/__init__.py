"""Routes by concern: frames (HTTP and WebSocket), sessions, reports, the browser demo."""
