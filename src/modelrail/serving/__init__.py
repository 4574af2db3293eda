"""The real-time prediction server: ASGI app, request protocols, hot swap, metrics."""
