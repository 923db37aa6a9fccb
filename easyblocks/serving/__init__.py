"""Serving: SavedModel export and batch prediction of CSV files."""
