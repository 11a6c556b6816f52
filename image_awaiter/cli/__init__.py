"""The command line: options parsed into settings, commands, and the one ending (exit code,
final line, termination message)."""
