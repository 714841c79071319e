"""DVC stage `inject`: the wrx_inject dataset — Car-Hacking attacks injected into the real WRX captures
named by params.yaml inject.source — into data/raw/wrx_inject/ (params: inject)."""

import sys

from kdgat.config import load_params
from kdgat.data.inject import build_injected
from kdgat.stage import run_stage


def main(out_dir: str) -> None:
    p = load_params().inject
    build_injected(p.source, out_dir, p)


if __name__ == "__main__":
    run_stage(main, *sys.argv[1:])
