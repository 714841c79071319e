"""DVC stage `synth`: generate the embedded synthetic dataset into data/raw/synth/ (params: synth).

The stage owns its out (dvc.yaml), so it replaces it (force) even where an older kdgat left it unmarked.
"""

import _checkout  # noqa: F401  (this checkout's kdgat, not the installed one)

from kdgat.cli.stage import run_stage
from kdgat.config import load_params
from kdgat.data.synth import generate
from kdgat.track.tracker import stage_run


def main(out_dir: str) -> None:
    p = load_params()
    with stage_run("synth", "synth", p, ["synth"]) as t:
        t.summary(generate(out_dir, p.synth, force=True)["totals"])


if __name__ == "__main__":
    run_stage(main, __doc__)
