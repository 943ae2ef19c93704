"""Preprocess tests use real Fashion-MNIST test images (devtools.fashion) and Pillow-made pictures."""
