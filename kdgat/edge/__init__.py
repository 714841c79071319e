"""On the car: the study's models exported to ONNX with proof of parity (export, parity), run in ONNX
Runtime (runtime) by a streaming detector over logs and live buses (stream, detect)."""
