"""What is fed to a model: safe decoding of untrusted images, faces found and framed, the model input tensor."""
