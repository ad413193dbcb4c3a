"""In/Out schemas of the reviews API, one module per resource."""
