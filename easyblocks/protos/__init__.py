"""Generated protobuf modules (compiled from protos/ at build time)."""
