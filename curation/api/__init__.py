"""The REST API, version 1: thin DRF views, one module per resource."""
