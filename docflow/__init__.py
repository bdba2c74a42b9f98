"""What the API, the workflows and the activities share: wire models, settings, ids, fingerprints.

Nothing imported here does I/O, so workflow code may import it inside the sandbox.
"""
