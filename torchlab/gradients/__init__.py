"""Gradient parity: the course's hand-derived gradients, checked against PyTorch autograd.

    hand.py          the formulas as the seeds write them (two-neuron net, patch regression,
                     digit-MLP backprop, f and the mountain B, ReLU nets' active linear piece)
    numpy_layers.py  the NumPy reference layers (dense, ReLU, sigmoid, BCE, L2, conv, max-pool,
                     flatten), forward and backward
    symbolic.py      the same gradients derived by SymPy from each net's expression
    checks.py        comparisons that produce one result row each (`CheckResult`)
    registry.py      float64 finite-difference checks and torch.autograd.gradcheck for
                     every registered model

`torchlab gradcheck [MODEL|all]` prints the rows as a table.
"""
