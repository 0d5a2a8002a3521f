"""The configuration tree, shipped inside the package (see pyproject.toml)."""
