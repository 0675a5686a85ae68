"""COMP4423 Assignment 2, Task 1: ResNet vs VGG (gradient flow and loss landscape).

What you write (the blocks that raise NotImplementedError):
    1.1  cifar10_loader: the CIFAR-10 input pipeline; build_models: replace both classification heads.
    1.2  loss_surface: a filter-normalised random plane with the package loss-landscapes;
         plot_loss_landscape: draw it.
    1.3  layer_grad_means: the mean |gradient| of every weight tensor; plot_gradient_flow: draw it.

Everything must run on the CPU with small inputs (the marking uses batches of 2 images of 32 to 64
pixels and a few grid steps). main() at the bottom runs the whole handout pipeline on the real
CIFAR-10 at 224 pixels; it is not run on import.
"""
import copy

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torchvision
from torch.utils.data import DataLoader
from torchvision import transforms

import loss_landscapes
from loss_landscapes.metrics import Loss
from loss_landscapes.model_interface.model_parameters import ModelParameters
from loss_landscapes.model_interface.model_wrapper import ModelWrapper

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


# -- data -----------------------------------------------------------------------------------------
class UncheckedCIFAR10(torchvision.datasets.CIFAR10):
    """torchvision's CIFAR10, unchanged except that it does not compare the files' md5 sums.

    torchvision refuses any copy of CIFAR-10 whose files do not have the real dataset's md5 sums.
    The marking runs your loader on a small synthetic CIFAR-10 written in exactly the real on-disk
    layout (cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta), so it calls
    cifar10_loader(..., check_md5=False), which uses this class. Reading, decoding and transforms are
    torchvision's own code.
    """

    train_list = [[name, None] for name, _ in torchvision.datasets.CIFAR10.train_list]
    test_list = [[name, None] for name, _ in torchvision.datasets.CIFAR10.test_list]
    meta = {**torchvision.datasets.CIFAR10.meta, "md5": None}


def cifar10_loader(root="./data", train=False, image_size=224, batch_size=8, shuffle=False, download=False,
                   check_md5=True):
    """A DataLoader over torchvision.datasets.CIFAR10 in `root`.

    Each batch is (images, labels): images a float32 tensor (batch_size, 3, image_size, image_size),
    resized from 32x32 to image_size x image_size, converted with ToTensor and normalised per channel
    with CIFAR10_MEAN and CIFAR10_STD; labels an int64 tensor of class indices 0..9. Keep
    num_workers=0 (the default) and the given `shuffle`.
    """
    dataset_cls = torchvision.datasets.CIFAR10 if check_md5 else UncheckedCIFAR10
    # Step 1: the transform: Resize to (image_size, image_size), ToTensor, Normalize  <- [Students: fill in]
    # Step 2: the dataset (use dataset_cls, not CIFAR10 directly) and the DataLoader  <- [Students: fill in]
    # TODO Task 1.1: replace this raise with your code.
    raise NotImplementedError("Task 1.1: fill in the missing lines here")
    return loader


# -- models ---------------------------------------------------------------------------------------
def build_models(num_classes=10, pretrained=False):
    """(vgg16, resnet18) from torchvision with `num_classes`-way heads.

    pretrained=True loads torchvision's ImageNet weights (needs internet the first time); the marking
    uses pretrained=False. The 1000-way ImageNet heads must be replaced by fresh Linear layers:
    VGG16's last classifier layer (classifier[6], 4096 inputs) and ResNet18's fc (512 inputs).
    """
    vgg = torchvision.models.vgg16(weights=torchvision.models.VGG16_Weights.IMAGENET1K_V1 if pretrained else None)
    resnet = torchvision.models.resnet18(weights=torchvision.models.ResNet18_Weights.IMAGENET1K_V1 if pretrained else None)
    # Replace both heads with num_classes-way Linear layers  <- [Students: fill in the two lines]
    # TODO Task 1.1: replace this raise with your code.
    raise NotImplementedError("Task 1.1: fill in the missing lines here")
    return vgg, resnet


# -- gradient flow (1.3) --------------------------------------------------------------------------
def layer_grad_means(model, inputs, labels, criterion):
    """One forward and backward pass on (inputs, labels); the mean |gradient| of each weight tensor.

    Returns (names, means): the names, in named_parameters() order, of every parameter that requires
    grad, has "weight" in its name and has a gradient after the backward pass (an unused layer's grad
    is None: skip it, do not crash), and the mean absolute gradient of each (floats, one per name).
    Gradients must come from this call alone: calling the function twice gives the same values.
    Do not change the model's train/eval mode.
    """
    # Step 1: clear old gradients, then forward, loss and backward  <- [Students: fill in]
    # Step 2: collect the names and the mean |grad| of the weight tensors (see the handout's tip)  <- [Students: fill in]
    # TODO Task 1.3: replace this raise with your code.
    raise NotImplementedError("Task 1.3: fill in the missing lines here")
    return names, means


def plot_gradient_flow(grad_flows):
    """Plot the gradient flow of several models in one figure and return the figure.

    grad_flows: dict, model name -> (names, means) from layer_grad_means.
    Draw one line per model with ax.plot: x = 0, 1, ..., len(means) - 1 (one point per weight
    tensor, input side first), y = the means, labelled with the model name (legend). A log y axis
    shows the vanishing gradients best. Do not call plt.show() or plt.close() here.
    """
    fig, ax = plt.subplots(figsize=(12, 5))
    # TODO Task 1.3: replace this raise with your code.
    raise NotImplementedError("Task 1.3: fill in the missing lines here")
    return fig


# -- loss landscape (1.2) -------------------------------------------------------------------------
class WeightTensorsOnly(ModelWrapper):
    """A loss-landscapes model wrapper that shows the package only the multi-dimensional weights.

    Why: loss-landscapes 3.0.6's filter normalisation rescales every filter of the random direction
    to the norm of the same filter in the model, and it treats each entry of a 1-D tensor as a
    filter. Freshly initialised VGG16 and ResNet18 have all-zero biases (and BatchNorm biases), so
    it divides 0 by 0 and raises ZeroDivisionError (trained models with non-zero biases hide it).
    Li et al. 2018 ("Visualizing the Loss Landscape of Neural Nets", Sec. 4) do not perturb biases
    and BatchNorm parameters at all: their direction is zero. This wrapper does exactly that: the
    plane is spanned by conv/linear weights only; 1-D parameters stay at their values.
    """

    def __init__(self, model):
        super().__init__([model])

    def get_module_parameters(self):
        return ModelParameters([p for p in self.modules[0].parameters() if p.dim() > 1])

    def forward(self, x):
        return self.modules[0](x)


def loss_surface(model, inputs, labels, criterion, distance=10.0, steps=20):
    """The loss on a filter-normalised random plane through the model's weights: a (steps, steps) array.

    Use loss_landscapes.random_plane(..., normalization="filter") on WeightTensorsOnly(...) (see its
    docstring for why) with a metric that evaluates the loss through the wrapper it is given
    (loss_landscapes.metrics.Loss(criterion, inputs, labels) does; a closure that calls your own
    model instead of the wrapper measures an unperturbed copy and gives a flat surface).
    loss-landscapes moves the parameters it is given in place and switches off requires_grad: work
    on a deep copy so that `model` is left exactly as it was. Evaluate in eval mode on the CPU.
    Note: loss-landscapes' `distance` is inverted: the plane spans about +-||weights|| / (2 * distance).
    """
    # Step 1: a CPU copy in eval mode, so the caller's model is never touched  <- [Students: fill in]
    # Step 2: the metric and the random plane  <- [Students: fill in]
    # TODO Task 1.2: replace this raise with your code.
    raise NotImplementedError("Task 1.2: fill in the missing lines here")
    return np.asarray(surface, dtype=float)


def plot_loss_landscape(surfaces):
    """Draw each model's loss surface in its own subplot and return the figure.

    surfaces: dict, model name -> (steps, steps) array from loss_surface. One subplot per model,
    titled with the model name, showing the surface as a filled contour plot (contourf; a 3-D
    plot_surface or imshow is fine too). Taking the log of the loss first is fine as well.
    Do not call plt.show() or plt.close() here.
    """
    fig, axes = plt.subplots(1, len(surfaces), figsize=(6 * len(surfaces), 5), squeeze=False)
    # TODO Task 1.2: replace this raise with your code.
    raise NotImplementedError("Task 1.2: fill in the missing lines here")
    fig.tight_layout()
    return fig


# -- the whole handout pipeline ---------------------------------------------------------------------
def main(root="./data", image_size=224, batch_size=8, steps=20, distance=10.0, download=True, check_md5=True):
    """Real CIFAR-10 (downloaded to root), pretrained weights when available, both plots saved as PNG."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loader = cifar10_loader(root, train=False, image_size=image_size, batch_size=batch_size, download=download,
                            check_md5=check_md5)
    images, labels = next(iter(loader))
    try:
        vgg, resnet = build_models(10, pretrained=True)
    except Exception as exc:  # noqa: BLE001 - offline: fall back to random weights
        print(f"pretrained weights unavailable ({exc}); using random initialisation")
        vgg, resnet = build_models(10, pretrained=False)
    criterion = nn.CrossEntropyLoss()
    flows, surfaces = {}, {}
    for name, model in (("VGG16", vgg), ("ResNet18", resnet)):
        model = model.to(device)
        x, y = images.to(device), labels.to(device)
        with torch.no_grad():
            print(name, "output", tuple(model(x).shape))
        flows[name] = layer_grad_means(model, x, y, criterion)
        surfaces[name] = loss_surface(model, x, y, criterion, distance=distance, steps=steps)
    plot_gradient_flow(flows).savefig("gradient_flow.png", dpi=150)
    plot_loss_landscape(surfaces).savefig("loss_landscape.png", dpi=150)
    print("wrote gradient_flow.png and loss_landscape.png")


if __name__ == "__main__":
    main()
