"""The model card of one dataset's release (README.md of its Hub repo): Hub metadata (license, tags,
datasets, `model-index` with every released model's results per test scenario from metrics/<ds>.json),
what each model is, how to load it, how it was trained, its limitations, provenance and citation.

Every number comes from the study's files; the limitations that depend on results (a scenario a model
cannot handle, a fusion that fell back to a fixed weighting) are derived from the study's records
(kdgat/publish/limits.py), so the card cannot praise a model the study found wanting. Everything here
is deterministic: the same study and commit give the same card, byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from kdgat.publish.limits import FusionChoice, describe, limitations, ordered
from kdgat.results.tables import metrics_table
from kdgat.study import Model

ROLES = {
    "large": "teacher",
    "small_kd": "student distilled from the teacher",
    "small": "student trained alone (no distillation)",
}
FUSION_ROLES = {
    "large": "fuses the teachers",
    "small_kd": "fuses the distilled students",
    "small": "fuses the students trained alone",
}
FAMILIES = {
    "gat": "GAT classifier (supervised; p_attack per window graph)",
    "vgae": "VGAE anomaly detector (trained on benign graphs; reconstruction score)",
    "fusion": "DQN fusion policy (per graph, a weight α between its VGAE's and GAT's scores)",
}
# metric key in metrics/<ds>.json → the name a model-index entry shows
CARD_METRICS = {
    "f1": "F1",
    "precision": "Precision",
    "recall": "Recall",
    "fpr": "False-positive rate",
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "mcc": "MCC",
    "dr_at_fpr_1pct": "Detection rate at 1% FPR",
}
TAGS = [
    "kd-gat",
    "graph-neural-networks",
    "intrusion-detection",
    "can-bus",
    "knowledge-distillation",
    "automotive-security",
    "safetensors",
]


def role(name: str) -> str:
    m = Model.parse(name)
    return (FUSION_ROLES if m.family == "fusion" else ROLES)[m.variant]


def model_index(dataset: str, metrics: Mapping[str, Any], models: Sequence[str]) -> list[dict[str, Any]]:
    """The Hub's `model-index`: per model, one result per test scenario (null metrics left out)."""
    index = []
    for name in models:
        results = []
        for scenario, values in sorted(metrics.get(name, {}).items()):
            shown = [
                {"type": key, "name": label, "value": round(float(values[key]), 6)}
                for key, label in CARD_METRICS.items()
                if values.get(key) is not None
            ]
            results.append(
                {
                    "task": {"type": "graph-ml", "name": "CAN-bus intrusion detection (window graphs)"},
                    "dataset": {
                        "type": dataset,
                        "name": f"{dataset} ({scenario})",
                        "split": f"test_{scenario}",
                    },
                    "metrics": shown,
                }
            )
        index.append({"name": f"kd-gat-{dataset}-{name}", "results": results})
    return index


def bibtex(citation: Mapping[str, Any], version: str, url: str) -> str:
    """A BibTeX @software entry from CITATION.cff's fields."""
    authors = " and ".join(
        a.get("name") or f"{a.get('family-names', '')}, {a.get('given-names', '')}".strip(", ")
        for a in citation.get("authors", [])
    )
    return "\n".join(
        [
            "@software{kdgat,",
            f"  title = {{{{{citation['title']}}}}},",
            f"  author = {{{authors}}},",
            f"  version = {{{version}}},",
            f"  url = {{{url}}},",
            "}",
        ]
    )


def render(
    *,
    dataset: str,
    repo_id: str,
    models: Sequence[str],
    metrics: Mapping[str, Any],
    parameters: Mapping[str, int],
    onnx_files: Sequence[str],
    provenance: Mapping[str, str],
    training: Mapping[str, Any],
    citation: Mapping[str, Any],
    license_id: str,
    unseen: Mapping[str, Sequence[str]] | None = None,
    fusions: Mapping[str, FusionChoice] | None = None,
) -> str:
    """README.md of the release of ``dataset``: YAML front matter for the Hub, then the card."""
    meta = {
        "license": license_id,
        "library_name": "pytorch",
        "pipeline_tag": "graph-ml",
        "tags": [*TAGS, *(["onnx"] if onnx_files else [])],
        "datasets": [dataset],
        "metrics": ["f1", "roc_auc"],
        "model-index": model_index(dataset, metrics, models),
    }
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    rows = [f"| `{m}/` | {FAMILIES[Model.parse(m).family]} | {role(m)} | {parameters[m]:,} |" for m in models]
    released = {m: metrics[m] for m in models if m in metrics}
    limits = limitations(metrics, models, unseen, fusions) or [
        "None of the released models fails a whole test scenario."
    ]
    version = provenance["version"]
    lines = [
        "---",
        front.rstrip(),
        "---",
        "",
        f"# kd-gat models: {dataset}",
        "",
        str(citation.get("abstract", "")).strip(),
        "",
        f"This repository holds the models of one dataset (`{dataset}`), kd-gat release {version}. Each",
        "folder is one model: `model.safetensors` (its weights) and `config.json` (all the pipeline's code",
        "needs to rebuild it: sizes, vocabulary and feature counts, thresholds, the fusion's calibration).",
        "",
        "| folder | model | role | parameters |",
        "| --- | --- | --- | ---: |",
        *rows,
        "",
        "A fusion model fuses the VGAE and the GAT of its own variant (e.g. `fusion_small_kd` fuses",
        "`vgae_small_kd` and `gat_small_kd`): it needs both of their outputs.",
        *(
            [
                "",
                "`onnx/` holds the students exported for ONNX Runtime and `detector.json`, all that",
                f"`kdgat detect` reads besides them ({', '.join(f'`{f}`' for f in onnx_files)}).",
            ]
            if onnx_files
            else []
        ),
        "",
        "## Use",
        "",
        "```python",
        "from kdgat.publish import from_pretrained",
        "",
        f'gat = from_pretrained("{repo_id}", "gat_small_kd")          # torch module, eval mode',
        f'policy = from_pretrained("{repo_id}", "fusion_small_kd")    # kdgat.fusion.policy.FusionPolicy',
        "```",
        "",
        "The inputs are kd-gat window graphs (100 CAN frames per window by default): build them with the",
        "pipeline (`kdgat ingest`, `kdgat graphs`) or run the ONNX files on a log or a live bus with",
        "`kdgat detect`. Intended use: research on in-vehicle intrusion detection, and a starting point",
        "for models trained on your own captures; not a certified safety component of a vehicle.",
        "",
        "## Results",
        "",
        f"F1 per model and test scenario on `{dataset}` (the `model-index` above has precision, recall,",
        "FPR, ROC-AUC, PR-AUC, MCC and the detection rate at 1 % FPR as well). Every model's decision",
        "threshold was chosen on the validation split.",
        "",
        metrics_table(released, "f1"),
        "",
        "| scenario | what it tests |",
        "| --- | --- |",
        *(
            f"| {s} | {describe(s, unseen or {})} |"
            for s in ordered({s for by in released.values() for s in by})
        ),
        "",
        "## Limitations",
        "",
        *(f"- {line}" for line in limits),
        "- Results hold for the dataset they were measured on; the synthetic default dataset is",
        "  calibrated against real traffic but is not real traffic. A new vehicle's CAN IDs are outside",
        "  the vocabulary: learn its benign traffic first (`kdgat detect --calibrate LOG` pairs its IDs",
        "  with known ones and sets the thresholds), and validate the detector on its own bus.",
        "",
        "## Training",
        "",
        "Trained by the kd-gat DVC pipeline (`dvc repro`): windows → graphs → VGAE and GAT teachers →",
        "distilled and plain students → DQN fusion → evaluation per test scenario, deterministic from",
        "its parameters. The parameters that shaped these models:",
        "",
        "```yaml",
        yaml.safe_dump(dict(training), sort_keys=False, width=100, default_flow_style=None).rstrip(),
        "```",
        "",
        "## Provenance",
        "",
        f"- kd-gat version: {version}",
        f"- git commit: `{provenance['git_commit']}`",
        f"- params hash (params.yaml, sha256/16): `{provenance['params_hash']}`",
        "",
        "## Citation",
        "",
        "```bibtex",
        bibtex(citation, version, provenance["url"]),
        "```",
        "",
    ]
    return "\n".join(lines)
