"""The S3 object store and the records on it, used alike by the API and the activities (never by workflow code).

`objects`: the store (conditional writes, its own thread pool, errors mapped by type); `reviews`: review records
and versions; `payloads`: Temporal's external storage of large payloads. Key layout: `docflow.keys` (pure).
"""
