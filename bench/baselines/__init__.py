"""What the modelserver is measured against: the naive hand-written server and the BentoML peer. Both serve
the same SavedModel and take the same ``{"instances": [...]}`` body as the modelserver's REST predict."""
