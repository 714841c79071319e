"""DVC stage `synth`: generate the embedded synthetic dataset into data/raw/synth/ (params: synth)."""

import sys

from kdgat.config import load_params
from kdgat.data.synth import generate
from kdgat.stage import run_stage


def main(out_dir: str) -> None:
    generate(out_dir, load_params().synth)


if __name__ == "__main__":
    run_stage(main, *sys.argv[1:])
