"""Sending WhatsApp messages: one client per gateway, and the outbox worker that drives them."""
