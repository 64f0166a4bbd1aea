"""Command-line entry points: thin wrappers that parse arguments, call the package and print short errors."""
