"""An outreach worker as its own process, so that a test can kill it in the middle of a run.

Arguments: the market database URL and the settings as JSON (OutreachConfig fields).
"""

from __future__ import annotations

import json
import sys

from market_platform import db
from market_platform.outreach.config import OutreachConfig
from market_platform.outreach.dispatch import Dispatcher

if __name__ == "__main__":
    url, settings = sys.argv[1], json.loads(sys.argv[2])
    report = Dispatcher(db.get_engine(url), OutreachConfig(**settings),
                        limiter_url="memory://").run()
    print(json.dumps(dict(report.outcomes)), flush=True)
