"""What a run shows and writes for people and machines: logs, progress, the live view and the
report."""
