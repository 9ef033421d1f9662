"""UTC ISO-8601 timestamps, as every result file writes them."""

import datetime
import time


def now_iso(epoch=None):
    moment = datetime.datetime.fromtimestamp(time.time() if epoch is None else epoch, datetime.timezone.utc)
    return moment.isoformat()
