"""Turn what people send (image files, texts, records) into the tensors a model's contract asks for."""
