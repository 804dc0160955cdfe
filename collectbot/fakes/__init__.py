"""Fakes of the services on the far side of the wire, served on loopback.

Tests and `collectbot demo` run the real python-telegram-bot, the real aiohttp server and the
real database; only the other end of each network connection is replaced by a server from
this package that keeps the state the real service would keep and records what it was asked.
Import each fake from its own module (`collectbot.fakes.telegram`).
"""
