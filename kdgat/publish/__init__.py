"""The release (`kdgat publish`, docs/release.md): the bundle of safetensors, configs, model cards and
archives (bundle, card, pretrained), and its upload to the Hugging Face Hub (hub), Zenodo (zenodo) and the
W&B model registry (registry), planned and run by release. ``from_pretrained`` loads a released model."""

from kdgat.publish.pretrained import from_pretrained

__all__ = ["from_pretrained"]
