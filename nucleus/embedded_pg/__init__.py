"""Django database backend that starts the embedded PostgreSQL (pgserver) on first connect.

Used when DATABASE_URL is unset. The server is shared by every process that uses the same
data directory (web, worker, management commands, tests) and stops when the last one exits.
"""
