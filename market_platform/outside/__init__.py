"""Outside APIs that limit how often we may ask: Overpass for live OSM data, a
Nominatim-compatible geocoder for addresses. Plain modules, no Dagster.

Both clients are polite by construction: a descriptive User-Agent, a timeout on every request,
bounded retries with back-off, a shared rate limit or lock per endpoint
(``market_platform.ratelimit``), and a cache so that nothing is asked twice.
"""
