"""Process-wide torch settings every training and inference entry point applies first, on the CPU and on
CUDA alike, and the one place that names the device a run uses."""

import os

import torch

# cuBLAS picks its reduction order per call unless its workspace is fixed; with deterministic algorithms on,
# a CUDA matrix product raises without this. cuBLAS reads it when CUDA starts: the SLURM job environment,
# the container and pixi set it too, for processes that touch CUDA before this module runs.
CUBLAS_WORKSPACE = ":4096:8"


def deterministic(threads: int | None = None) -> None:
    """Make results a function of the inputs alone. With more than one thread, CPU scatter-adds (GAT
    attention softmax, pooling) otherwise sum in a scheduling-dependent order, so two runs of the same stage
    differed in the 8th digit after one epoch and then diverged (early-stopping epoch, curriculum). The
    deterministic kernels were measured no slower here (2 threads: 0.74-0.76 s vs 0.85 s per VGAE epoch).
    On CUDA the scatter-adds use torch's sort-based deterministic kernels (their cost: `make bench` on a
    GPU, `deterministic_cost`), and float32 matrix products stay in full float32 (no TF32), so a GPU run
    stays close to a CPU one."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    if torch.cuda.is_initialized() and os.environ["CUBLAS_WORKSPACE_CONFIG"] not in (":4096:8", ":16:8"):
        raise RuntimeError(
            f"CUBLAS_WORKSPACE_CONFIG={os.environ['CUBLAS_WORKSPACE_CONFIG']!r}: deterministic CUDA matrix "
            "products need :4096:8 or :16:8, set before CUDA starts"
        )
    if threads is not None:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # denormal optimizer moments make CPU steps many times slower
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    torch.use_deterministic_algorithms(True)


def device_of(accelerator: str) -> torch.device:
    """The torch device for ``train.accelerator``: auto is CUDA when a GPU is visible, else the CPU."""
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    if accelerator == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.accelerator = cuda, but torch sees no CUDA device (set it to auto or cpu)")
    return torch.device(accelerator)
