"""What operators see of a running gateway: logs, protocol traces, health, metrics."""
