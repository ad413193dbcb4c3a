"""plannerweb as an MCP server: other agents list tools, submit plans and read runs over MCP.

Streamable HTTP at ``/mcp`` (``endpoint.py``), authenticated with a personal API
token and role-checked like the REST API; the tools (``tools.py``) call the same
services and selectors as ``runs/api``.
"""
