"""In/Out schemas of the runs API, one module per resource."""
