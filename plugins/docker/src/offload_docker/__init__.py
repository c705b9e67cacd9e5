"""offload's Docker backend."""
