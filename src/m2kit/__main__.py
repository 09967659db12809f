"""`python -m m2kit` runs the `m2` command."""

from m2kit.cli import main

main()
