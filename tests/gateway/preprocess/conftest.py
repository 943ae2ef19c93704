"""Preprocess tests use real Fashion-MNIST test images (tests.support.fashion) and Pillow-made pictures."""
