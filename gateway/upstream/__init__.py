"""Talking to model servers (docs/architecture.md: gateway/upstream/)."""

# TF Serving's default SignatureDef key (signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY), for the gateway.
DEFAULT_SIGNATURE = "serving_default"
