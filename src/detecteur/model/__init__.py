"""The network: architectures and weights, the model file and its metadata, ONNX export, inference backends."""
