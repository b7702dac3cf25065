"""The ground floor: user-facing errors, registries, the options schema, command-line and JSON
helpers and the image reader. It imports nothing else of this project."""
