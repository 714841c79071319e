"""DVC stage `inject`: the wrx_inject dataset — Car-Hacking attacks injected into the real WRX captures
named by params.yaml inject.source — into data/raw/wrx_inject/ (params: inject)."""

from pathlib import Path

import _checkout  # noqa: F401  (this checkout's kdgat, not the installed one)

from kdgat.cli.stage import run_stage
from kdgat.config import load_params
from kdgat.data.inject import build_injected
from kdgat.track.tracker import stage_run


def main(out_dir: str) -> None:
    p = load_params()
    with stage_run("inject", Path(out_dir).name, p, ["inject"]) as t:
        t.summary(build_injected(p.inject.source, out_dir, p.inject, force=True)["totals"])


if __name__ == "__main__":
    run_stage(main, __doc__)
