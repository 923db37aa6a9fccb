"""Data utilities for easyblocks: synthetic sample data and input helpers."""
