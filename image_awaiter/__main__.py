"""`python -m image_awaiter` runs the CLI."""

from image_awaiter.cli import main

main()
