"""`python -m image_awaiter` runs the CLI."""

from image_awaiter.entry import main

main()
