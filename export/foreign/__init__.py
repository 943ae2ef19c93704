"""Publish a user's own model: ``python -m export publish SOURCE --name NAME`` (``export.foreign.build``).

source.py   load a .keras / .h5 file or a SavedModel, hash it, refuse what TF Serving could not run
contract.py the input contract, inferred from the model or stated by flags, with its provenance
samples.py  held-out rows (from --samples or generated from the contract) and their tf.Examples
pixels.py   photos as image inputs (mode, size, resize rule, range)
evaluation.py  --eval: accuracy or RMSE beside the trivial baseline
build.py    assemble the Servable and publish it through export.api.write_version
"""
