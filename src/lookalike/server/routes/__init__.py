"""The ``/v1`` routes, one module per concern: search and verify, tables and faces, images, index jobs."""
