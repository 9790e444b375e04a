"""The watchdog: liveness from outside the connector, sleep/wake, supervised restarts."""
