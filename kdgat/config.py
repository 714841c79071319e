"""Typed parameters: Pydantic models over params.yaml, validated once before any work starts.

params.yaml is the one place a value is set: no field here has a default (tests/test_config.py checks),
so a key missing from the file fails as loudly as a typo (every model is frozen and forbids unknown keys),
and no code path runs a study other than the file's. Fields carry their checks and the comments say why.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

# A job submitted by kdgat.cluster.launch reads the copy of params.yaml taken at submission (KDGAT_PARAMS)
PARAMS_FILE = Path(os.environ.get("KDGAT_PARAMS", "params.yaml"))
# What a `kdgat` command reads when its folder has no params.yaml: the checkout it was installed from
CHECKOUT_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


class _Strict(BaseModel):
    # no inf/NaN anywhere (`synth.minutes: inf` overflowed deep inside the generator)
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        """YAML's true is not 1: `train.seed: true` is a mistake, not seed 1."""
        field = cls.model_fields[info.field_name or ""]
        if isinstance(value, bool) and field.annotation in (int, float, int | None, float | None):
            raise ValueError("expected a number, got a boolean")
        return value


Share = Annotated[float, Field(ge=0, le=1)]  # a probability
Fraction = Annotated[float, Field(gt=0, le=1)]  # a non-empty share
Positive = Annotated[float, Field(gt=0)]


class IngestParams(_Strict):
    format: Literal["auto", "candump", "asc", "blf", "trc", "canlog_csv", "hcrl", "hcrl_txt", "cantt"]
    on_bad_line: Literal["error", "skip"]  # skip: drop and count bad lines in the report


class SynthParams(_Strict):
    seed: int
    minutes: float = Field(gt=0)  # total capture time over all files
    vehicles: int = Field(ge=2, le=8)  # the last one is held out as the unknown vehicle
    holdout_attack: Literal["dos", "fuzzy", "gear", "rpm", "replay", "masquerade", "suspension"]


class InjectParams(_Strict):
    """The `wrx_inject` dataset (kdgat/data/inject.py): attacks injected into real benign captures."""

    source: str  # folder of benign captures, relative to the repo root
    seed: int
    train_fraction: float = Field(gt=0, lt=1)  # leading share of each capture, by time, for training
    holdout_attack: Literal["replay", "masquerade", "suspension"]  # test_03 only
    train_copies: int = Field(ge=1, le=8)  # attacked copies of each training part per known attack


class WindowParams(_Strict):
    size: int = Field(ge=2)  # frames per window
    stride: int = Field(ge=1)  # frames between window starts; < size gives overlapping windows
    # node features of the expected IDs a window lacks (kdgat/data/features.absence_features): expected
    # from each known vehicle's training traffic, the unseen one's calibration traffic (its ID alignment)
    absent_ids: bool
    # node feature of how far an ID's bytes lie outside their levels in the vehicle's other training
    # captures (kdgat/data/ranges.py); it reads the vehicle profiles of absent_ids
    byte_ranges: bool
    # each side of a byte range widened by this many times the farthest one capture lies beyond the others
    range_margin: float = Field(ge=0)

    @model_validator(mode="after")
    def _stride_fits(self) -> WindowParams:
        if self.stride > self.size:
            raise ValueError(f"stride ({self.stride}) must not exceed size ({self.size})")
        if self.byte_ranges and not self.absent_ids:
            raise ValueError("byte_ranges needs absent_ids: true (it reads the same vehicle profiles)")
        return self


class SplitParams(_Strict):
    # time_block: tail of each training capture; segment: tail of each benign and each attack run of a
    # capture (keeps the class balance); file: whole captures (needs several captures per class)
    by: Literal["time_block", "segment", "file"]
    val_fraction: float = Field(gt=0, lt=1)
    seed: int


class VocabParams(_Strict):
    min_count: int = Field(ge=1)  # IDs seen fewer times in benign training traffic map to unknown


class CalibrationParams(_Strict):
    # A deployed detector may learn an unseen vehicle's normal traffic before it watches it, never its
    # attacks: the first ``seconds`` of each benign capture in the dataset's calibration_*/ folder (of the
    # unknown-vehicle scenarios' vehicle), used without labels, set each model's threshold on that vehicle
    # so that a share ``fpr`` of the calibration windows would alarm (kdgat/fusion/policy.py).
    seconds: float = Field(gt=0)
    fpr: float = Field(gt=0, lt=0.5)
    # Pair the vehicle's IDs with known IDs that behave alike (kdgat/data/alignment.py) before scoring it
    align_ids: bool


class ParamsError(ValueError):
    """params.yaml is invalid; the message names each bad key and what it accepts."""


# --- the study (models, training, distillation, fusion) ---------------------------------------------


class GATScale(_Strict):
    embed_dim: int = Field(ge=1)  # CAN-ID embedding width
    hidden: int = Field(ge=1)  # per attention head
    heads: int = Field(ge=1)
    layers: int = Field(ge=1)
    mlp_hidden: int = Field(ge=1)
    dropout: float = Field(ge=0, lt=1)
    # graph readouts, concatenated: a sum changes when a node is missing (suspension), mean and max barely
    pooling: tuple[Literal["mean", "max", "sum"], ...] = Field(min_length=1)
    # width of the ID-profile readout (0: none; kdgat/models/gat.py): which vocabulary IDs the window
    # holds, a learned per-node score of each, and how surprising each absent or unknown ID is after
    # benign training traffic — an expected ID that went silent shows up directly, where attention
    # layers see only the nodes that are there
    id_profile: int = Field(ge=0)
    # read the range features of windows.byte_ranges, when the graphs hold them (false: those columns are
    # skipped, and the GAT sees what it sees without them; docs/study.md)
    byte_ranges: bool


class VGAEScale(_Strict):
    embed_dim: int = Field(ge=1)
    hidden: int = Field(ge=1)  # per attention head
    heads: int = Field(ge=1)
    layers: int = Field(ge=1)
    latent: int = Field(ge=1)
    dropout: float = Field(ge=0, lt=1)
    # read (and reconstruct) the absence node features of windows.absent_ids, when the graphs hold them
    absent_ids: bool


class DQNScale(_Strict):
    hidden: int = Field(ge=1)
    layers: int = Field(ge=1)


class GATScales(_Strict):
    # ≈ 380k vs 64k parameters on the default dataset
    large: GATScale
    small: GATScale


class VGAEScales(_Strict):
    large: VGAEScale
    small: VGAEScale


class DQNScales(_Strict):
    large: DQNScale
    small: DQNScale


class ModelParams(_Strict):
    gat: GATScales
    vgae: VGAEScales
    dqn: DQNScales


class TrainParams(_Strict):
    """Shared by every training stage."""

    seed: int
    batch_size: int = Field(ge=1)
    max_epochs: int = Field(ge=1)
    patience: int = Field(ge=1)  # early stopping on the validation metric
    # epochs before which no checkpoint is kept as the best and early stopping does not count (lit.py)
    warmup_epochs: int = Field(ge=0)
    lr: float = Field(gt=0)
    # cosine: the learning rate falls from lr to lr·lr_min over max_epochs (per epoch), so the weights an
    # early stop keeps come from small steps, not from one noisy step of a constant rate
    lr_schedule: Literal["constant", "cosine"]
    lr_min: float = Field(ge=0, le=1)
    # > 0: validate, select and keep an exponential moving average of the weights (this decay per step)
    # instead of the last step's weights, whose validation loss jumps from epoch to epoch
    ema_decay: float = Field(ge=0, lt=1)
    weight_decay: float = Field(ge=0)
    threads: int = Field(ge=1)  # torch intra-op threads
    # auto: CUDA when a GPU is visible, else the CPU (Lightning's names); training, inference and fusion alike
    accelerator: Literal["auto", "cpu", "cuda"]
    # bf16-mixed: autocast to bfloat16 (a GPU's tensor cores); weights, optimizer and metrics stay float32
    precision: Literal["32-true", "bf16-mixed"]

    @model_validator(mode="after")
    def _warmup_fits(self) -> TrainParams:
        if self.warmup_epochs >= self.max_epochs:
            raise ValueError(
                f"warmup_epochs ({self.warmup_epochs}) must be under max_epochs ({self.max_epochs})"
            )
        return self


class GATTrainParams(_Strict):
    loss: Literal["ce", "focal"]
    focal_gamma: float = Field(ge=0)
    class_weights: bool  # inverse-frequency weights over the epoch's sample
    sampling: Literal["none", "undersample", "curriculum"]
    benign_ratio: tuple[Positive, Positive]  # curriculum: benign per attack graph, first → last epoch
    hardness: tuple[Fraction, Fraction]  # curriculum: easiest share of benign graphs eligible
    monitor: Literal["val_loss", "val_f1"]  # early stopping and best checkpoint
    id_dropout: float = Field(ge=0, lt=1)  # share of training graphs shown with all CAN IDs unknown
    # targets (1 − ε)·label + ε/classes (ce and focal): a model may not push a drive's windows to certainty
    label_smoothing: float = Field(ge=0, lt=1)


class VGAETrainParams(_Strict):
    w_feat: float = Field(ge=0)  # node-feature MSE
    w_id: float = Field(ge=0)  # CAN-ID cross-entropy
    w_nbr: float = Field(ge=0)  # neighbour-set BCE
    w_kl: float = Field(ge=0)


class KDParams(_Strict):
    temperature: float = Field(gt=0)
    alpha: float = Field(ge=0, le=1)  # weight of the distillation term (GAT)
    vgae_alpha: float = Field(ge=0, le=1)  # weight of latent + reconstruction matching (VGAE)


class FusionParams(_Strict):
    actions: int = Field(ge=2)  # α grid over [0, 1]
    cost_fn: float = Field(ge=0)  # cost of a missed attack
    cost_fp: float = Field(ge=0)  # cost of a false alarm
    epochs: int = Field(ge=1)
    epsilon: tuple[Share, Share]  # exploration, first → last epoch (feedback: bandit only)
    reward_correct: float = Field(ge=0)  # reward of a right decision (attack caught or benign passed)
    # full: regress Q(s,·) on every action's reward (all are computable offline); bandit: ε-greedy, only the
    # chosen action's reward (the classic DQN update, noisier)
    feedback: Literal["full", "bandit"]
    # reward given up per unit of |α − α_val|, α_val the best fixed α on validation: the policy leaves the
    # validated weighting only where the fitted rows promise more than this (0: no prior)
    prior_cost: float = Field(ge=0)
    # true: the policy is the best fixed α unless the Q-net beats it on the select half (prior rewards)
    fallback: bool
    # the VGAE alarms on its own, whatever α, above the score only this share of benign validation windows
    # reach (0: no guard; kdgat/fusion/policy.py); on an unseen vehicle, this share of its calibration windows
    guard_fpr: float = Field(ge=0, lt=1)


class ExportParams(_Strict):
    """ONNX export for the car (kdgat/edge/): which models, which opset, which fusion the detector runs."""

    opset: int = Field(ge=18, le=23)  # the dynamo exporter writes opset 18 or later
    models: list[str] = Field(min_length=1)  # study names (kdgat/study.py); each gets a parity report
    detector: str  # the fusion model `kdgat detect` runs; its VGAE and GAT must be in ``models``
    batch_size: int = Field(ge=1)  # graphs per ONNX Runtime call in the parity check
    quantize: bool  # also write <model>.int8.onnx (dynamic int8) with its parity, size and latency

    @model_validator(mode="after")
    def _detector_inputs_exported(self) -> ExportParams:
        # names themselves are checked against kdgat/study.py when the stage parses them
        family, _, variant = self.detector.partition("_")
        if family != "fusion":
            raise ValueError(f"detector must be a fusion model (fusion_<variant>), not {self.detector!r}")
        missing = [f"{f}_{variant}" for f in ("vgae", "gat", "fusion") if f"{f}_{variant}" not in self.models]
        if missing:
            raise ValueError(f"the detector {self.detector} needs {missing} in export.models")
        return self


class TrackingParams(_Strict):
    """W&B tracking (kdgat/track/). No DVC stage lists this section: renaming the project reruns nothing."""

    project: str = Field(min_length=1)
    entity: str | None  # W&B team or user; None: the key's default entity
    # auto: WANDB_MODE when set, else online with a key (WANDB_API_KEY or .env), else offline
    mode: Literal["auto", "offline", "online", "disabled"]
    loss_jump: float = Field(gt=1)  # alert when a loss grows by more than this factor in one epoch
    log_models: bool  # checkpoints as W&B model artifacts


class HubParams(_Strict):
    """The Hugging Face Hub: one model repository per dataset (kdgat/publish/hub.py)."""

    repo: str = Field(pattern=r"^[\w.-]+/[\w.{}-]+$")  # owner/name; {dataset} is replaced by each dataset
    private: bool  # a repo created private stays out of search until made public on the Hub


class ZenodoParams(_Strict):
    """Zenodo's REST deposition API (kdgat/publish/zenodo.py): code and models under one concept DOI."""

    url: str = Field(pattern=r"^https?://")  # the API's base URL
    sandbox_url: str = Field(pattern=r"^https?://")  # used with `kdgat publish --sandbox` (tokens differ)


class RegistryParams(_Strict):
    """The W&B model registry (kdgat/publish/registry.py): which released models get which aliases."""

    registry: str = Field(min_length=1)  # linked into wandb-registry-<registry>/<model>-<dataset>
    aliases: list[str]  # every released model
    promoted: list[str]  # study names: the models a paper cites ...
    promoted_aliases: list[str]  # ... get these as well


class PublishParams(_Strict):
    """`kdgat publish` (kdgat/publish/): what is released where. No DVC stage lists this section."""

    datasets: list[str] = Field(min_length=1)  # each must be one of `datasets` (its study must exist)
    models: list[str] = Field(min_length=1)  # study names (kdgat/study.py), the same for every dataset
    folder: str  # the release bundle, written by every run (git-ignored)
    license: str = Field(min_length=1)  # SPDX id, lower case as the Hub spells it (mit)
    hub: HubParams
    zenodo: ZenodoParams
    wandb: RegistryParams

    @model_validator(mode="after")
    def _fusions_have_inputs(self) -> PublishParams:
        # a fusion model is useless without the VGAE and GAT whose outputs it fuses
        for name in self.models:
            family, _, variant = name.partition("_")
            missing = [f"{f}_{variant}" for f in ("vgae", "gat") if f"{f}_{variant}" not in self.models]
            if family == "fusion" and missing:
                raise ValueError(f"{name} fuses {missing}: add them to publish.models")
        stray = [m for m in self.wandb.promoted if m not in self.models]
        if stray:
            raise ValueError(f"wandb.promoted names {stray}, which publish.models does not release")
        return self


class UMAPParams(_Strict):
    """The paper's latent-space figure: UMAP (umap-learn) of each VGAE's mean latents (kdgat/paper/)."""

    n_neighbors: int = Field(ge=2)  # local vs global structure; capped at the graphs a model has, minus one
    min_dist: float = Field(ge=0, le=1)  # how tightly points pack; umap-learn needs it ≤ its spread (1)
    seed: int  # fixed: the same latents give the same picture (and umap-learn then runs single-threaded)


class PaperParams(_Strict):
    """The paper (paper/, kdgat/paper/): which dataset its text reports and how its figures are computed.
    The dataset is checked when the paper stage runs, not when params load (like publish.datasets)."""

    dataset: str
    umap: UMAPParams


class HPOParam(_Strict):
    """One searched parameter of `hpo.space`, keyed there by its dotted params.yaml path."""

    type: Literal["float", "int", "categorical"]
    # an entry names what applies to its type; the others are absent (not defaults: no value is chosen)
    low: int | float | None = None  # float | int: the range searched
    high: int | float | None = None
    log: bool = False  # float | int: sample on a log scale (low > 0)
    choices: list[str | int | float | bool] | None = None  # categorical: the values tried

    @model_validator(mode="after")
    def _consistent(self) -> HPOParam:
        if self.type == "categorical":
            if not self.choices or self.low is not None or self.high is not None or self.log:
                raise ValueError("categorical needs choices (a non-empty list) and no low/high/log")
            return self
        if self.low is None or self.high is None or self.choices is not None:
            raise ValueError(f"{self.type} needs low and high (and choices: null)")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.type == "int" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError(f"int needs integer bounds, got {self.low}..{self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, got {self.low}")
        return self


class HPOParams(_Strict):
    """Optuna studies (`kdgat hpo`, kdgat/cluster/hpo.py). No DVC stage lists this section."""

    metric: Literal["val_f1", "val_loss", "val_auc"]  # the objective; val_loss is minimised
    trials: int = Field(ge=1)  # per `kdgat hpo` call, over all its workers
    seed: int  # TPE sampler; worker i uses seed + i
    startup_trials: int = Field(ge=0)  # random trials before TPE, and finished trials before pruning
    warmup_epochs: int = Field(ge=0)  # epochs a trial always runs before it may be pruned
    # searched parameters by dotted params.yaml key; a study searches those its model's stage reads
    space: dict[str, HPOParam]


class SlurmParams(_Strict):
    """sbatch resources of every job (field names as submitit's SlurmExecutor takes them)."""

    partition: str | None  # None: the cluster's default partition
    gpus_per_node: int = Field(ge=0)  # given to launch.gpu_stages only; 0 on a cluster without GPUs
    cpus_per_task: int = Field(ge=1)
    mem_gb: int = Field(ge=1)
    timeout_min: int = Field(ge=1)  # per job; a job that reaches it requeues and resumes
    signal_delay_s: int = Field(ge=0)  # SLURM sends USR2 this long before the time limit: requeue
    account: str | None
    qos: str | None
    constraint: str | None  # node features, e.g. v100


class LaunchParams(_Strict):
    """Where stage work runs (kdgat/cluster/launch.py, `kdgat launch`). No DVC stage lists this section:
    moving the study to another cluster reruns nothing."""

    executor: Literal["local", "slurm", "debug"]  # KDGAT_EXECUTOR in the environment overrides it
    folder: str  # job logs, submitit pickles and code snapshots (git-ignored)
    poll_s: float = Field(gt=0)  # seconds between job-state checks
    max_timeouts: int = Field(ge=0)  # requeues after a time limit (preemptions requeue without limit)
    gpu_stages: list[str]  # fnmatch
    slurm: SlurmParams


# The project's own datasets (`kdgat datasets add`), beside params.yaml: name → {path, format, ...}
PROJECT_CATALOGUE = Path("datasets.yaml")
RAW_ROOT = Path("data/raw")  # the ingest stage reads data/raw/<dataset>/ (for a project dataset: a link)


def package_catalogue() -> dict[str, Any]:
    """The datasets kd-gat ships (kdgat/data/catalog.yaml), as raw YAML."""
    return dict(yaml.safe_load(resources.files("kdgat.data").joinpath("catalog.yaml").read_text()))


def project_catalogue(path: Path = PROJECT_CATALOGUE) -> dict[str, Any]:
    """The project's datasets (datasets.yaml), as raw YAML; {} when the file is absent or empty."""
    if not path.exists():
        return {}
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if raw is not None and not (isinstance(raw, dict) and all(isinstance(v, dict) for v in raw.values())):
        raise ParamsError(f"{path}: expected 'name: {{path: ..., format: ...}}' entries")
    clash = sorted(set(raw or {}) & set(package_catalogue()))
    if clash:
        raise ParamsError(f"{path}: {clash} are kd-gat's own datasets; give yours another name")
    return dict(raw or {})


def catalogue_names() -> list[str]:
    """Dataset names of both catalogues (read directly, so params are checked before any data code loads)."""
    return [*package_catalogue(), *project_catalogue()]


class Params(_Strict):
    datasets: list[str] = Field(min_length=1)  # the DVC foreach
    # The embedded synthetic dataset, generated by the `synth` stage; empty → the stage is absent, so a
    # project on its own captures (datasets: [mine]) generates nothing it does not use.
    synthetic: list[Literal["synth"]]
    # Datasets built from real captures outside the repo (`inject` stage); empty → the stage is absent, so a
    # clone without ../shared still runs `dvc repro`.
    injected: list[Literal["wrx_inject"]]
    ingest: IngestParams
    synth: SynthParams
    inject: InjectParams
    windows: WindowParams
    split: SplitParams
    vocab: VocabParams
    calibration: CalibrationParams
    models: ModelParams
    train: TrainParams
    gat_train: GATTrainParams
    vgae_train: VGAETrainParams
    kd: KDParams
    fusion: FusionParams
    export: ExportParams
    tracking: TrackingParams
    hpo: HPOParams
    launch: LaunchParams
    publish: PublishParams
    paper: PaperParams

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, names: list[str]) -> list[str]:
        known = catalogue_names()
        bad = [n for n in names if n not in known]
        if bad:
            raise ValueError(f"unknown dataset(s) {bad}; expected any of {known}")
        if len(set(names)) != len(names):
            raise ValueError("a dataset is listed twice")
        return names

    @model_validator(mode="after")
    def _built_datasets_agree(self) -> Params:
        """A dataset a stage builds is one the pipeline uses, and the other way round; a project dataset's
        folder is there (checked now, not when ingest starts)."""
        for key, built in (("synthetic", self.synthetic), ("injected", self.injected)):
            unused = [n for n in built if n not in self.datasets]
            if unused:
                raise ValueError(f"{key} builds {unused}, which datasets does not list: remove it from {key}")
            missing = [n for n in self.datasets if n in _BUILT_BY[key] and n not in built]
            if missing:
                raise ValueError(f"datasets lists {missing}, which only the {key} list builds: add it there")
        for name, entry in project_catalogue().items():
            raw = RAW_ROOT / name
            if name in self.datasets and not raw.exists():
                where = entry.get("path", "its folder")
                raise ValueError(
                    f"dataset {name!r}: {raw} is missing; run `kdgat datasets add {name} --path {where}`"
                )
        return self

    @model_validator(mode="after")
    def _hpo_keys_exist(self) -> Params:
        dumped = self.model_dump()
        for key in self.hpo.space:
            value = dotted(dumped, key, KeyError)
            if value is KeyError or isinstance(value, dict) or key.startswith("hpo."):
                raise ValueError(f"hpo.space: {key!r} is not a parameter that a study can set")
        return self


_BUILT_BY = {"synthetic": ("synth",), "injected": ("wrx_inject",)}


_MISSING: Any = object()


def dotted(tree: Mapping[str, Any], key: str, default: Any = _MISSING) -> Any:
    """The value at a dotted params.yaml key (``models.gat.small.hidden``) of nested mappings, as dvc.yaml
    `params:` and `dvc exp run -S` name them; ``default`` (else KeyError) where a part is missing."""
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is _MISSING:
                raise KeyError(key)
            return default
        node = node[part]
    return node


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set the existing leaf at a dotted key; KeyError where there is none (a typo, or a whole section)."""
    parent, _, leaf = key.rpartition(".")
    node = dotted(tree, parent, None) if parent else tree
    if not isinstance(node, dict) or leaf not in node or isinstance(node[leaf], dict):
        raise KeyError(key)
    node[leaf] = value


def sections(params: Params, keys: Sequence[str]) -> dict[str, Any]:
    """The params.yaml entries named by dotted keys, as dvc.yaml `params:` lists them: {key: value}."""
    dumped = params.model_dump(mode="json")
    return {key: dotted(dumped, key) for key in keys}


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: {err.error_count()} invalid parameter(s)"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (check spelling; see kdgat/config.py)")
            continue
        # a check across keys (loc empty) names its keys itself; its input would be all of params
        got = "" if e["type"] == "missing" or not e["loc"] else f" (got {e.get('input')!r})"
        lines.append(f"  {key}: {e['msg'].removeprefix('Value error, ')}{got}")
    return "\n".join(lines)


def parse_params(raw: object, source: str = "params") -> Params:
    try:
        return Params.model_validate(raw or {})
    except ValidationError as err:
        raise ParamsError(format_validation_error(err, source)) from None


def with_overrides(params: Params, overrides: Mapping[str, object], source: str = "overrides") -> Params:
    """``params`` with dotted keys set, as `dvc exp run -S key=value` sets them, and validated again."""
    raw = params.model_dump(mode="json")
    for key, value in overrides.items():
        try:
            set_dotted(raw, key, value)
        except KeyError:
            raise ParamsError(f"{source}: {key!r} is not a parameter in params.yaml") from None
    return parse_params(raw, source)


def params_here(path: str | Path = PARAMS_FILE) -> Params:
    """load_params of ``path``, or of the checkout's params.yaml where there is none (a `kdgat` command run
    outside the project reads the study it was installed from, never values of its own)."""
    return load_params(path if Path(path).exists() else CHECKOUT_PARAMS)


@lru_cache(maxsize=8)
def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml (cached: loaded once per process)."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: parameters file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    return parse_params(raw, str(path))
