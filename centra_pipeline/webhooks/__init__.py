"""Webhook intake: the HTTP receiver that verifies Centra's signed POSTs, and the durable
inbox (SQLite) it stores them in for the sensor and the syncs."""
