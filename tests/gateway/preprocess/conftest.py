"""Preprocess tests use real Fashion-MNIST test images (tests.gateway.images) and Pillow-made pictures."""
