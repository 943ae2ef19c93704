"""Shared test support: real server processes on free loopback ports, tiny models."""
