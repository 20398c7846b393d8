"""Built-in node types, one module per node family."""
