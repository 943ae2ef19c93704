"""Protections both HTTP servers share (the modelserver's REST API and the gateway): HTTP/1.1 framing limits
and timeouts for uvicorn (``guard.http``), rate-limited logging of client errors (``guard.logs``) and the
heap tuning both do once at start (``guard.heap``). It imports neither TensorFlow nor FastAPI."""
