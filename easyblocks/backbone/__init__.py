"""Backbone: the DAG of blocks built from its spec, run in topological order, and the
interpreter of safe expressions."""
