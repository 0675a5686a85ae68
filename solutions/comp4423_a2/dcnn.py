"""COMP4423 Assignment 2, Task 2: a deformable convolution layer."""
import torch
import torch.nn as nn
import torchvision


class DeformableConv2d(nn.Module):
    """A k x k deformable convolution whose sampling offsets are predicted by a plain convolution.

    Inputs to forward: x (B, in_channels, H, W) float tensor.
    Returns: (B, out_channels, H_out, W_out), the same spatial size as nn.Conv2d with the same
    kernel_size, padding and stride.
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, padding=1, stride=1):
        super().__init__()
        self.kernel_size = kernel_size
        self.padding = padding
        self.stride = stride
        # BEGIN SOLUTION 2.1
        # The offset convolution: one (dy, dx) pair for each of the k*k kernel taps, at every
        # output location  <- [Students: fill in the missing line]
        self.offset = nn.Conv2d(in_channels, 2 * kernel_size * kernel_size, kernel_size=kernel_size, padding=padding, stride=stride)
        # END SOLUTION
        self.deform_conv = torchvision.ops.DeformConv2d(
            in_channels, out_channels, kernel_size=kernel_size, padding=padding, stride=stride, bias=False
        )

    def forward(self, x):
        offsets = self.offset(x)  # (B, 2*k*k, H_out, W_out)
        return self.deform_conv(x, offsets)


if __name__ == "__main__":
    layer = DeformableConv2d(3, 8)
    print(layer(torch.randn(1, 3, 32, 32)).shape)
