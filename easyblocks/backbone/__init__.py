"""Backbone: the DAG of blocks, input slices and safe expressions."""
