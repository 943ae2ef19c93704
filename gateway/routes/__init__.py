"""HTTP routes, one module per resource: inference, models, admin, health."""
