"""eas-gateway: an Exchange ActiveSync gateway to standards-based groupware.

Layers (imports point down only): eas_gateway (HTTP, EAS commands) -> usm
(sync state in PostgreSQL, upstream drivers) ; wbxml (codec) stands alone.
"""

__version__ = "0.1.0"
