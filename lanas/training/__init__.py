"""Real training with Lightning: CIFAR-10 data, the nasnet supernet, cell networks, final training."""
