"""Universal Synchronization Module: the per-device sync state EAS needs and
the upstream does not, kept in PostgreSQL, plus the upstream drivers.

All SQL of the project lives in this package. It imports nothing from
eas_gateway (the protocol layer above it) and nothing from wbxml.
"""
