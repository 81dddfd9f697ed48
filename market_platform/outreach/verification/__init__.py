"""Do subscribers' email addresses exist? Syntax, DNS, and an SMTP probe without DATA.

Results: ``valid``, ``invalid`` (with the reason), ``unknown`` (greylisting, timeouts,
servers refusing probes) and ``catch-all`` (the server accepts any address of the domain, so
its "yes" says nothing about this one).
"""
