"""The gateway: a FastAPI front door that turns images, text and records into TF Serving gRPC calls.

It never imports TensorFlow; the protobuf/gRPC modules it needs are vendored in ``tfs_protos``.
"""
