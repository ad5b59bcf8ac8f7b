"""Thin entry points, one per DVC stage: read the stage's params block, call `pipeline`, write artifacts."""
