"""Workspace memory: the `MEMORY.md` and `memory/**/*.md` files of the workspace, their full-text index
(SQLite FTS5, in its own database beside the store) and the safe reading of line windows."""
