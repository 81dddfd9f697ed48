"""Channels deliver one message each and say what happened, in terms the outbox understands.

Every channel calls ``claim()`` right before the step that cannot be taken back (the DATA
of an SMTP transaction, the HTTPS request of an API) and reports failures before that point
as safe to retry, failures after it without an answer as ``uncertain``.
"""
