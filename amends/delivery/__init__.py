"""Delivery: channel adapters (email, webhooks), the outbox, consent and the opt-out link."""
