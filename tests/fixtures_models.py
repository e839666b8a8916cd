"""Fixtures for tiny randomly initialised models built from config."""
