"""DQN fusion of the VGAE and the GAT: the one decision rule, VGAE calibration and the policy inference
needs (policy.py), the Q-network (dqn.py), and fitting the policy with its baselines (train.py)."""
