"""kd-gat: CAN-bus intrusion detection with graph neural networks and knowledge distillation."""

__version__ = "0.1.0"
