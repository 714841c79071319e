"""The SQL of the results views (kdgat/results/views.py) as JSON, so the browser's DuckDB runs the very
queries `kdgat results leaderboard` and `kdgat results kd-transfer` run, with the same ordering."""

import json

from kdgat.results.tables import SCENARIO_ORDER
from kdgat.results.views import KD_TRANSFER_ORDER, KD_TRANSFER_SQL, LEADERBOARD_ORDER, LEADERBOARD_SQL

print(
    json.dumps(
        {
            "leaderboard": {"sql": LEADERBOARD_SQL, "order": LEADERBOARD_ORDER},
            "kd_transfer": {"sql": KD_TRANSFER_SQL, "order": KD_TRANSFER_ORDER},
            "scenarios": list(SCENARIO_ORDER),
        }
    )
)
