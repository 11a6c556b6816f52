"""The run loop and its policies: gather a snapshot, judge, tell, wait; signals; cleanup."""
