"""Results tables on a fake pipeline output tree shaped like the real one (metrics JSON, training reports and
epoch CSVs, dataset reports, figure tables): row-for-row agreement with the metrics JSON, every table against
its documented schema, lineage, the DuckDB views checked by hand, byte-identical reruns, a run killed between
tables, clear errors, the CLI and the generated schema doc."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from support.tiny_project import study_params
from typer.testing import CliRunner

import kdgat.results.build as res
from kdgat.cli.main import app
from kdgat.config import with_overrides
from kdgat.results.schema import FIGURE_TABLES, META_TABLE, META_VERSION, SCHEMA_VERSION, TABLES, VIEWS
from kdgat.results.schema import schema_markdown as render_schema
from kdgat.results.views import ResultsMissingError, connect, kd_transfer, leaderboard, show
from kdgat.study import MODELS, Model
from kdgat.track.tracker import git_commit

STUDY = study_params()  # the repository's params.yaml

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = ("known", "unknown_attack")
# F1 on `known`; unknown_attack is 0.5 lower. fusion_small and fusion_small_kd tie on purpose.
F1 = {
    "vgae_large": 0.90,
    "vgae_small_kd": 0.88,
    "vgae_small": 0.85,
    "gat_large": 0.99,
    "gat_small_kd": 0.97,
    "gat_small": 0.95,
    "fusion_large": 0.98,
    "fusion_small_kd": 0.96,
    "fusion_small": 0.96,
}
SIZE = {("vgae", "large"): 1000, ("vgae", "small"): 200, ("gat", "large"): 6000, ("gat", "small"): 1000}
DQN = {"large": 300, "small": 50}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _metrics(model: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for i, s in enumerate(SCENARIOS):
        f1 = round(F1[model] - 0.5 * i, 4)
        out[s] = {"f1": f1, "precision": f1 + 0.01, "recall": f1 - 0.01, "fpr": 0.02, "roc_auc": 0.9}
        out[s].update({"mcc": None if i else 0.8, "tp": 40, "n": 100})
    return out


def _train_report(ds: str, m: Model) -> dict[str, Any]:
    if m.family == "fusion":
        return {
            "scale": m.scale,
            "params": DQN[m.scale],
            "epochs_run": 3,
            "best_epoch": 2,
            "best_select_reward": 0.9,
            "inputs": {
                "vgae": f"predictions/{ds}/vgae_{m.variant}.parquet",
                "gat": f"predictions/{ds}/gat_{m.variant}.parquet",
            },
            "wall_s": 0.5,
            "started_at": "2026-12-01T10:00:05.000+00:00",
            "finished_at": "2026-12-01T10:00:05.500+00:00",
        }
    rep: dict[str, Any] = {
        "best_epoch": 1,
        "best_val": 0.25,
        "epochs_run": 3,
        "kd": m.teacher is not None,
        "kind": m.family,
        "monitor": "val_loss",
        "params_count": SIZE[(m.family, m.scale)],
        "resumed_from": None,
        "scale": m.scale,
        "stopped_early": False,
        "teacher": f"models/{ds}/{m.teacher.name}.ckpt" if m.teacher else None,
        "train_graphs_per_s": 1000.0,
        "train_seconds": 3.0,
        "wall_seconds": 3.5,
    }
    if m.variant != "small":  # the plain students' reports predate the start and end times
        rep |= {"started_at": "2026-12-01T09:00:00.250+00:00", "finished_at": "2026-12-01T09:00:03.750+00:00"}
    if m.family == "gat":
        rep["vgae_scores"] = f"predictions/{ds}/vgae_{m.variant}.parquet"
    return rep


EPOCH_COLS = {
    "vgae": ["train_loss", "val_loss", "val_auc"],
    "gat": ["train_loss", "val_loss", "val_f1"],
    "fusion": ["epsilon", "train_loss", "fit_reward", "select_reward"],
}


def _figures(ds: str) -> dict[str, pl.DataFrame]:
    graph = {"split": ["test_known", "val"], "index": [3, 7], "y": [1, 0], "y_type": [2, 0]}
    return {
        "embeddings": pl.DataFrame(
            {
                "model": ["gat_large"] * 2,
                **graph,
                "pc1": [0.1, -0.1],
                "pc2": [0.2, 0.0],
                "pc1_share": [0.6] * 2,
            }
        ).with_columns(pl.lit(0.3).alias("pc2_share")),
        # the VGAEs' latents whole: a teacher's and a student's differ in width
        "latents": pl.DataFrame({"model": ["vgae_large", "vgae_small"], **graph}).with_columns(
            pl.Series("latent", [[0.5, -1.0, 2.0], [0.25]], dtype=pl.List(pl.Float32))
        ),
        "attention": pl.DataFrame(
            {"model": ["gat_large"] * 2, "split": ["test_known"] * 2, "index": [3, 3], "y": [1, 1]}
        ).with_columns(
            pl.Series("layer", [0, 1]),
            pl.Series("head", [0, 0]),
            pl.Series("src", [0, 1]),
            pl.Series("dst", [1, 1]),
            pl.Series("src_id", [None, "0A1"], dtype=pl.String),
            pl.Series("dst_id", ["0A1", "0A1"]),
            pl.Series("alpha", [0.25, 0.75], dtype=pl.Float32),
            pl.Series("src_attack", [False, True]),
            pl.Series("dst_attack", [True, True]),
        ),
        "dqn_policy": pl.DataFrame(
            {"model": ["fusion_large"] * 2, **graph, "vgae_anomaly": [0.9, 0.1], "p_attack": [0.8, 0.0]}
        ).with_columns(
            pl.Series("gat_attack", [0.8, 0.0]),
            pl.Series("alpha", [0.5, 0.5]),
            pl.Series("guard", [0.0, 0.0]),
            pl.Series("fused", [0.85, 0.05]),
            pl.Series("decision", [1, 0], dtype=pl.Int8),
        ),
        # no `kl` column: evaluate writes the loss terms "those present"
        "recon_errors": pl.DataFrame({"model": ["vgae_large"] * 2, **graph}).with_columns(
            *(pl.Series(c, [1.5, 0.5], dtype=pl.Float32) for c in ("score", "feat_mse", "id_ce", "nbr_bce")),
            pl.lit(1.0).alias("threshold"),
        ),
    }


def fake_pipeline(root: Path, ds: str = "synth") -> dict[str, Any]:
    """The files the results stage reads for dataset ``ds``, under ``root``; returns the metrics dict."""
    metrics = {name: _metrics(name) for name in sorted(MODELS)}
    (root / "metrics").mkdir(parents=True, exist_ok=True)
    (root / "metrics" / f"{ds}.json").write_text(json.dumps(metrics, indent=2))
    train = root / "reports" / "train" / ds
    train.mkdir(parents=True, exist_ok=True)
    for name in MODELS:
        m = Model.parse(name)
        (train / f"{name}.json").write_text(json.dumps(_train_report(ds, m)))
        cols = EPOCH_COLS[m.family]
        rows = {"epoch": [0, 1, 2], **{c: [1.0 + j, 0.5 + j, 0.25 + j] for j, c in enumerate(cols)}}
        pl.DataFrame(rows).write_csv(train / f"{name}.epochs.csv")
    counts = {
        split: {
            "graphs": 10,
            "nodes": 100,
            "edges": 200,
            "benign": 6,
            "attack": 4,
            "attack_types": {"dos": 4},
        }
        for split in ("test_known", "test_unknown_attack", "train", "val")
    }
    graphs = {"counts": counts, "duplicates_dropped": {"test_known": 1, "val": 0}, "vocab_size": 12}
    ingest = {"files": 5, "frames": 10_000, "bad_lines": 0, "bad_examples": []}
    for kind, rep in (("graphs", graphs), ("ingest", ingest)):
        (root / "reports" / kind).mkdir(parents=True, exist_ok=True)
        (root / "reports" / kind / f"{ds}.json").write_text(json.dumps(rep))
    figures = root / "plots" / ds / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for name, df in _figures(ds).items():
        df.write_parquet(figures / f"{name}.parquet")
    sizes = [
        {"model": n, "kind": Model.parse(n).family, "parameters": 10, "state_bytes": 40, "file_bytes": 99}
        for n in MODELS
    ]
    pl.DataFrame(sizes).write_csv(figures / "model_sizes.csv")
    pl.DataFrame({"y_type": [0, 1, 2], "attack_type": ["none", "fuzzy", "dos"]}).write_csv(
        figures / "attack_types.csv"
    )
    return metrics


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    metrics = fake_pipeline(tmp_path)
    res.build_results("synth", STUDY, root=tmp_path, commit=COMMIT)
    return tmp_path, metrics


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


# --- the tables -----------------------------------------------------------------------------------


def test_every_table_matches_its_documented_schema(built: tuple[Path, Any]) -> None:
    root, _ = built
    out = root / "results" / "synth"
    assert {p.name for p in out.iterdir()} == {f"{t}.parquet" for t in TABLES}
    for name, table in TABLES.items():
        df = pl.read_parquet(out / f"{name}.parquet")
        assert df.schema == table.schema, name
        assert all(df[c].null_count() == 0 for c in table.required), name
        assert (df["dataset"] == "synth").all(), name
        meta = pl.read_parquet_metadata(out / f"{name}.parquet")
        assert meta[META_TABLE] == name and meta[META_VERSION] == str(SCHEMA_VERSION)
        assert df.height > 0, name


def test_metrics_table_is_the_json_row_for_row(built: tuple[Path, Any]) -> None:
    root, metrics = built
    expected = [
        ("synth", model, s, k, None if v is None else float(v))
        for model, by_s in metrics.items()
        for s, values in by_s.items()
        for k, v in values.items()
    ]
    got = pl.read_parquet(root / "results/synth/metrics.parquet").rows()
    assert got == expected
    assert len(got) == len(set((r[1], r[2], r[3]) for r in got))  # no duplicate keys


def test_runs_record_lineage_sizes_and_params(built: tuple[Path, Any]) -> None:
    root, _ = built
    runs = {r["model"]: r for r in pl.read_parquet(root / "results/synth/runs.parquet").to_dicts()}
    assert set(runs) == set(MODELS)
    assert runs["gat_small_kd"]["teacher"] == "gat_large" and runs["gat_small_kd"]["kd"] is True
    assert runs["vgae_small_kd"]["teacher"] == "vgae_large"
    assert runs["gat_small"]["teacher"] is None and runs["gat_small"]["kd"] is False
    assert runs["gat_small_kd"]["curriculum_vgae"] == "vgae_small_kd"
    fusion = runs["fusion_small_kd"]
    assert (fusion["fusion_vgae"], fusion["fusion_gat"]) == ("vgae_small_kd", "gat_small_kd")
    assert fusion["params_count"] == 50 and fusion["params_total"] == 50 + 200 + 1000
    assert fusion["monitor"] == "select_reward" and fusion["train_graphs_per_s"] is None
    assert runs["gat_large"]["params_total"] == 6000 and runs["gat_large"]["git_commit"] == COMMIT
    # the distilled GAT's params name its own stage's entries and its teacher's and curriculum VGAE's
    p = json.loads(runs["gat_small_kd"]["params"])
    assert {
        "models.gat.small",
        "models.gat.large",
        "kd.alpha",
        "kd.vgae_alpha",
        "models.vgae.large",
    } <= p.keys()
    assert "fusion" not in p
    assert len({r["params_hash"] for r in runs.values()}) == len(MODELS)


def test_params_hash_follows_the_params(tmp_path: Path) -> None:
    fake_pipeline(tmp_path)
    base = res.runs_table(res.Sources("synth", tmp_path), list(MODELS), STUDY, None)
    changed = with_overrides(STUDY, {"kd.alpha": 0.5})
    other = res.runs_table(res.Sources("synth", tmp_path), list(MODELS), changed, None)
    differs = {m for m, a, b in zip(MODELS, base["params_hash"], other["params_hash"], strict=True) if a != b}
    assert differs == {"gat_small_kd", "fusion_small_kd"}  # the distilled GAT and the fusion built on it


def test_stage_params_are_the_dvc_stage_params() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name in MODELS:
        m = Model.parse(name)
        stage = stages["fusion" if m.family == "fusion" else name]
        declared = set(stage.get("do", stage)["params"])
        assert set(res.stage_params(STUDY, m)) == declared, name


def test_epoch_metrics_are_the_csvs_long(built: tuple[Path, Any]) -> None:
    root, _ = built
    df = pl.read_parquet(root / "results/synth/epoch_metrics.parquet")
    csv = pl.read_csv(root / "reports/train/synth/fusion_large.epochs.csv")
    mine = df.filter(pl.col("model") == "fusion_large")
    assert mine.height == csv.height * (csv.width - 1)
    for col in EPOCH_COLS["fusion"]:
        got = mine.filter(pl.col("metric") == col).sort("epoch")
        assert got["value"].to_list() == csv[col].to_list()
    assert set(df.filter(pl.col("model") == "gat_large")["metric"]) == set(EPOCH_COLS["gat"])


def test_datasets_and_figure_tables(built: tuple[Path, Any]) -> None:
    root, _ = built
    ds = pl.read_parquet(root / "results/synth/datasets.parquet")
    assert ds["split"].to_list() == ["train", "val", "test_known", "test_unknown_attack"]
    row = ds.row(2, named=True)
    assert row["attack_types"] == [{"attack": "dos", "graphs": 4}] and row["duplicates_dropped"] == 1
    assert ds.row(0, named=True)["duplicates_dropped"] is None
    assert (ds["vocab_size"] == 12).all() and (ds["frames"] == 10_000).all()
    recon = pl.read_parquet(root / "results/synth/recon_errors.parquet")
    assert recon["kl"].null_count() == recon.height and recon["score"].to_list() == [1.5, 0.5]
    for name in FIGURE_TABLES:
        assert pl.read_parquet(root / f"results/synth/{name}.parquet").columns[0] == "dataset"


def test_runs_carry_start_and_end_times_where_reports_do(built: tuple[Path, Any]) -> None:
    root, _ = built
    runs = {r["model"]: r for r in pl.read_parquet(root / "results/synth/runs.parquet").to_dicts()}
    gat = runs["gat_large"]
    assert gat["started_at"] == datetime(2026, 12, 1, 9, 0, 0, 250_000, tzinfo=UTC)
    assert (gat["finished_at"] - gat["started_at"]).total_seconds() == 3.5
    assert runs["fusion_large"]["finished_at"] == datetime(2026, 12, 1, 10, 0, 5, 500_000, tzinfo=UTC)
    assert runs["gat_small"]["started_at"] is None and runs["gat_small"]["finished_at"] is None


def test_bad_time_in_a_report_names_the_file(tmp_path: Path) -> None:
    fake_pipeline(tmp_path)
    report = tmp_path / "reports/train/synth/gat_large.json"
    report.write_text(json.dumps({**json.loads(report.read_text()), "started_at": "yesterday"}))
    with pytest.raises(res.ResultsError, match=r"gat_large\.json: not an ISO 8601 time"):
        res.build_results("synth", STUDY, root=tmp_path)


def test_figure_tables_name_the_attack_types(built: tuple[Path, Any], tmp_path: Path) -> None:
    root, _ = built
    for name in ("embeddings", "dqn_policy", "recon_errors"):
        df = pl.read_parquet(root / f"results/synth/{name}.parquet")
        assert df.select("y_type", "attack_type").rows() == [(2, "dos"), (0, "none")], name
    att = pl.read_parquet(root / "results/synth/attention.parquet")
    assert att["src_attack"].to_list() == [False, True] and att["dst_attack"].to_list() == [True, True]
    (root / "plots/synth/figures/attack_types.csv").unlink()  # an evaluation from before the names
    res.build_results("synth", STUDY, root=root)
    assert pl.read_parquet(root / "results/synth/embeddings.parquet")["attack_type"].null_count() == 2


def test_git_commit_outside_a_checkout_is_none(tmp_path: Path) -> None:
    assert git_commit(tmp_path) is None


# --- views ----------------------------------------------------------------------------------------


def test_leaderboard_ranks_by_f1(built: tuple[Path, Any]) -> None:
    root, _ = built
    board = leaderboard(root / "results", scenario="known")
    assert board.schema == VIEWS["leaderboard"].schema
    assert board["model"].to_list() == [
        "gat_large",
        "fusion_large",
        "gat_small_kd",
        "fusion_small",  # ties share rank 4; equal size, then by name
        "fusion_small_kd",
        "gat_small",
        "vgae_large",
        "vgae_small_kd",
        "vgae_small",
    ]
    assert board["rank"].to_list() == [1, 2, 3, 4, 4, 6, 7, 8, 9]
    assert board["f1"].to_list() == sorted(F1.values(), reverse=True)
    top = board.row(0, named=True)
    assert (top["params"], top["params_total"], top["mcc"]) == (6000, 6000, 0.8)
    full = leaderboard(root / "results")
    assert full.height == len(MODELS) * len(SCENARIOS)
    assert full["scenario"].to_list() == ["known"] * 9 + ["unknown_attack"] * 9
    assert full.filter(pl.col("scenario") == "unknown_attack")["mcc"].null_count() == 9


def test_kd_transfer_by_hand(built: tuple[Path, Any]) -> None:
    root, _ = built
    kd = kd_transfer(root / "results")
    assert kd.schema == VIEWS["kd_transfer"].schema
    assert kd.height == 3 * len(SCENARIOS)
    assert kd["family"].to_list() == ["vgae", "vgae", "gat", "gat", "fusion", "fusion"]
    for row in kd.iter_rows(named=True):
        fam, shift = row["family"], 0.5 * SCENARIOS.index(row["scenario"])
        large, small_kd, small = (F1[f"{fam}_{v}"] - shift for v in ("large", "small_kd", "small"))
        assert row["f1_large"] == pytest.approx(large)
        assert row["kd_gain"] == pytest.approx(small_kd - small)
        assert row["gap_to_teacher"] == pytest.approx(large - small_kd)
    gat = kd.filter((pl.col("family") == "gat") & (pl.col("scenario") == "known")).row(0, named=True)
    assert gat["kd_gain"] == pytest.approx(0.97 - 0.95) and gat["compression"] == pytest.approx(6000 / 1000)
    fusion = kd.filter(pl.col("family") == "fusion").row(0, named=True)
    assert fusion["compression"] == pytest.approx((300 + 1000 + 6000) / (50 + 200 + 1000))


def test_views_union_the_datasets(tmp_path: Path) -> None:
    for ds in ("synth", "wrx_inject"):
        fake_pipeline(tmp_path, ds)
        res.build_results(ds, STUDY, root=tmp_path)
    con = connect(tmp_path / "results")
    try:
        for name in (*TABLES, *VIEWS):
            (n,) = con.execute(f"SELECT count(DISTINCT dataset) FROM {name}").fetchone() or (0,)
            assert n == 2, name
        (runs,) = con.execute("SELECT count(*) FROM runs").fetchone() or (0,)
        assert runs == 2 * len(MODELS)
    finally:
        con.close()
    only = leaderboard(tmp_path / "results", dataset="wrx_inject")
    assert only["dataset"].unique().to_list() == ["wrx_inject"]
    assert show(tmp_path / "results", "runs", "synth", limit=2).height == 2


# --- reruns, kills, errors -------------------------------------------------------------------------


def test_rerun_writes_the_same_bytes(built: tuple[Path, Any]) -> None:
    root, _ = built
    out = root / "results" / "synth"
    before = _files(out)
    rows = res.build_results("synth", STUDY, root=root, commit=COMMIT)
    assert _files(out) == before
    assert rows["runs"] == len(MODELS) and pl.read_parquet(out / "runs.parquet").height == len(MODELS)


def test_a_run_killed_between_tables_leaves_every_table_readable(
    built: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, metrics = built
    out = root / "results" / "synth"
    before = _files(out)
    metrics["gat_large"]["known"]["f1"] = 0.5
    (root / "metrics/synth.json").write_text(json.dumps(metrics))
    real, calls = res.write_table, []

    def dies_on_third(df: pl.DataFrame, table: Any, dest: Path) -> None:
        calls.append(table.name)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        real(df, table, dest)

    monkeypatch.setattr(res, "write_table", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        res.build_results("synth", STUDY, root=root, commit=COMMIT)
    names = list(TABLES)
    assert calls == names[:3]
    assert sorted(p.name for p in out.iterdir()) == sorted(before)  # no temp files left behind
    for name in names:
        df = pl.read_parquet(out / f"{name}.parquet")  # every table still reads
        assert df.schema == TABLES[name].schema
    new_f1 = pl.read_parquet(out / "metrics.parquet").filter(
        (pl.col("model") == "gat_large") & (pl.col("scenario") == "known") & (pl.col("metric") == "f1")
    )
    assert new_f1["value"].to_list() == [0.5]  # written before the kill
    assert all(_files(out)[f"{n}.parquet"] == before[f"{n}.parquet"] for n in names[2:])  # untouched


def test_missing_inputs_name_the_file(tmp_path: Path) -> None:
    fake_pipeline(tmp_path)
    (tmp_path / "reports/train/synth/gat_small.epochs.csv").unlink()
    with pytest.raises(res.ResultsError, match=r"gat_small\.epochs\.csv: not found"):
        res.build_results("synth", STUDY, root=tmp_path)
    assert not (tmp_path / "results").exists()  # nothing written unless every table could be built
    (tmp_path / "metrics/synth.json").unlink()
    with pytest.raises(res.ResultsError, match=r"metrics/synth\.json: not found.*make run"):
        res.build_results("synth", STUDY, root=tmp_path)


def test_missing_results_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsMissingError, match="make run"):
        connect(tmp_path / "results")


# --- CLI and docs ---------------------------------------------------------------------------------


def test_cli_prints_the_views(built: tuple[Path, Any]) -> None:
    root, _ = built
    runner, d = CliRunner(), str(root / "results")
    out = runner.invoke(app, ["results", "leaderboard", "--dir", d, "--scenario", "known"])
    assert out.exit_code == 0, out.output
    assert "| synth   | known    | 1    | gat_large" in out.output and "0.990" in out.output
    out = runner.invoke(app, ["results", "kd-transfer", "--dir", d])
    assert out.exit_code == 0 and "kd_gain" in out.output and "6.000" in out.output
    out = runner.invoke(app, ["results", "show", "runs", "--dir", d, "--columns", "model,teacher"])
    assert out.exit_code == 0 and "gat_small_kd    | gat_large" in out.output
    out = runner.invoke(app, ["results", "tables", "--dir", d])
    assert out.exit_code == 0 and "kd_transfer" in out.output
    out = runner.invoke(app, ["results", "show", "nope", "--dir", d])
    assert out.exit_code == 2 and "unknown table 'nope'" in out.output
    out = runner.invoke(app, ["results", "leaderboard", "--dir", str(root / "elsewhere")])
    assert out.exit_code == 2 and "make run" in out.output


def test_schema_doc_is_generated_from_the_code() -> None:
    doc = REPO / "docs" / "results.md"
    assert doc.read_text() == render_schema(), "regenerate: kdgat results schema > docs/results.md"
    for name in (*TABLES, *VIEWS):
        assert f"### `{name}`" in doc.read_text()


def test_a_report_without_a_field_is_named(tmp_path: Path) -> None:
    fake_pipeline(tmp_path)
    path = tmp_path / "reports/train/synth/gat_large.json"
    rep = json.loads(path.read_text())
    del rep["best_epoch"]
    path.write_text(json.dumps(rep))
    with pytest.raises(res.ResultsError, match=r"gat_large\.json .*no 'best_epoch' field"):
        res.build_results("synth", STUDY, root=tmp_path)
