"""The math of convolutional networks, from scratch in NumPy: readable loops and the tests' oracle.

- ``conv``: ``corr2d``, multiple input/output channels, 1×1 convolution as a matrix product,
  padding, stride, dilation and groups (``conv2d``);
- ``pooling``: max/average pooling with stride, padding, ceil_mode and indices; max-unpooling;
- ``transposed``: transposed convolution by scattering and as the transpose of ``conv_matrix``;
- ``learn``: learning a 1×2 edge kernel by gradient descent.

Example:
    >>> from cnnlab.reference import corr2d
    >>> corr2d(np.ones((3, 3)), np.ones((2, 2))).tolist()
    [[4.0, 4.0], [4.0, 4.0]]
"""

from cnnlab.reference.conv import (
    conv2d,
    corr2d,
    corr2d_1x1,
    corr2d_multi_in,
    corr2d_multi_in_out,
    pad2d,
)
from cnnlab.reference.learn import LearnedKernel, edge_image, learn_edge_kernel
from cnnlab.reference.pooling import (
    avg_pool2d,
    global_avg_pool2d,
    max_pool2d,
    max_unpool2d,
    pool2d,
)
from cnnlab.reference.transposed import conv_matrix, conv_transpose2d, conv_transpose2d_matrix

__all__ = [
    "LearnedKernel", "avg_pool2d", "conv2d", "conv_matrix", "conv_transpose2d",
    "conv_transpose2d_matrix", "corr2d", "corr2d_1x1", "corr2d_multi_in", "corr2d_multi_in_out",
    "edge_image", "global_avg_pool2d", "learn_edge_kernel", "max_pool2d", "max_unpool2d", "pad2d",
    "pool2d",
]
