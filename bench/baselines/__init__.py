"""What the modelserver is measured against: the naive hand-written server and the peers (BentoML, Ray
Serve, KServe), which serve the same SavedModel and take the same ``{"instances": [...]}`` body as the
modelserver's REST predict; and the transport floor, grpc.aio and uvicorn answering canned replies."""
