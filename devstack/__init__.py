"""The embedded development stack and the `docflow` CLI: servers as child processes, the demo, the commands.

Kept apart from `docflow/`, which holds only pure code shared with workflow code.
"""
