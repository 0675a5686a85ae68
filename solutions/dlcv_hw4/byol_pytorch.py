"""DLCV Fall 2022 HW4, Problem 2: BYOL self-supervised pre-training (Grill et al., 2020).

Names and signatures follow the byol-pytorch package (lucidrains) that many students adapted, so such a
file drops in: loss_fn, EMA, update_moving_average, MLP, NetWrapper and BYOL.

    online:  x -> f_theta (backbone) -> g_theta (projector) -> z -> q_theta (predictor) -> q(z)
    target:  x -> f_xi -> g_xi -> z'          (xi: an exponential moving average of theta, no gradient)
    loss  =  loss_fn(q(z_1), sg(z'_2)) + loss_fn(q(z_2), sg(z'_1)),   loss_fn(a, b) = 2 - 2 cos(a, b)

averaged over the batch; z_1, z_2 come from two augmentations of the same images.

    learner = BYOL(resnet50(), image_size=128, hidden_layer="avgpool")
    loss = learner(images); loss.backward(); opt.step(); learner.update_moving_average()
"""
import copy

import torch
import torch.nn.functional as F
from torch import nn


def default(val, def_val):
    return def_val if val is None else val


def flatten(t):
    return t.reshape(t.shape[0], -1)


def set_requires_grad(model, val):
    for p in model.parameters():
        p.requires_grad = val


def loss_fn(x, y):
    """BYOL's regression loss per sample: 2 - 2 cos(x_b, y_b), i.e. the squared distance of the
    L2-normalised vectors. x, y: (B, D) tensors -> (B,) tensor in [0, 4] (0: same direction, 4: opposite)."""
    # BEGIN SOLUTION 2.1
    x = F.normalize(x, dim=-1, p=2)
    y = F.normalize(y, dim=-1, p=2)
    return 2 - 2 * (x * y).sum(dim=-1)
    # END SOLUTION


class EMA:
    """The target's exponential moving average: new_average = beta * old + (1 - beta) * new."""

    def __init__(self, beta):
        super().__init__()
        self.beta = beta

    def update_average(self, old, new):
        """old: the target's (moving-average) value xi, or None at the start; new: the online value theta."""
        # BEGIN SOLUTION 2.2
        if old is None:
            return new
        return old * self.beta + (1 - self.beta) * new
        # END SOLUTION


def update_moving_average(ema_updater, ma_model, current_model):
    """xi <- beta xi + (1 - beta) theta for every parameter, in place: ma_model (the target) follows
    current_model (the online network); current_model is left unchanged."""
    # BEGIN SOLUTION 2.2
    with torch.no_grad():
        for current_params, ma_params in zip(current_model.parameters(), ma_model.parameters()):
            ma_params.data = ema_updater.update_average(ma_params.data, current_params.data)
    # END SOLUTION


class MLP(nn.Module):
    """Projector and predictor: Linear -> BatchNorm1d -> ReLU -> Linear."""

    def __init__(self, dim, projection_size, hidden_size=4096):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden_size),
            nn.BatchNorm1d(hidden_size),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_size, projection_size),
        )

    def forward(self, x):
        return self.net(x)


class NetWrapper(nn.Module):
    """The backbone plus a projector on the output of one of its layers (`layer`: a child's name or an
    index into its children; -2 is the layer before the classifier). forward(x) -> (projection, representation)."""

    def __init__(self, net, projection_size, projection_hidden_size, layer=-2):
        super().__init__()
        self.net = net
        self.layer = layer
        self.projector = None  # built on the first forward, when the representation's size is known
        self.projection_size = projection_size
        self.projection_hidden_size = projection_hidden_size
        self.hidden = {}
        self.hook_registered = False

    def _find_layer(self):
        if isinstance(self.layer, str):
            return dict(self.net.named_modules()).get(self.layer)
        if isinstance(self.layer, int):
            return list(self.net.children())[self.layer]
        return None

    def _hook(self, _, input, output):
        self.hidden[output.device] = flatten(output)

    def _register_hook(self):
        layer = self._find_layer()
        assert layer is not None, f"hidden layer ({self.layer}) not found"
        layer.register_forward_hook(self._hook)
        self.hook_registered = True

    def _get_projector(self, hidden):
        if self.projector is None:
            self.projector = MLP(hidden.shape[-1], self.projection_size, self.projection_hidden_size).to(hidden)
        return self.projector

    def get_representation(self, x):
        if self.layer == -1:
            return self.net(x)
        if not self.hook_registered:
            self._register_hook()
        self.hidden.clear()
        _ = self.net(x)
        hidden = self.hidden[x.device]
        self.hidden.clear()
        assert hidden is not None, f"hidden layer {self.layer} never emitted an output"
        return hidden

    def forward(self, x, return_projection=True):
        representation = self.get_representation(x)
        if not return_projection:
            return representation
        projection = self._get_projector(representation)(representation)
        return projection, representation


class RandomApply(nn.Module):
    def __init__(self, fn, p):
        super().__init__()
        self.fn, self.p = fn, p

    def forward(self, x):
        return x if torch.rand(()) > self.p else self.fn(x)


def default_augmentation(x):
    """A light torch-only augmentation: random horizontal flip and brightness/contrast jitter per image."""
    flip = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5
    x = torch.where(flip, x.flip(-1), x)
    scale = 1 + 0.4 * (torch.rand(x.shape[0], 1, 1, 1, device=x.device) - 0.5)
    shift = 0.2 * (torch.rand(x.shape[0], 1, 1, 1, device=x.device) - 0.5)
    return x * scale + shift


class BYOL(nn.Module):
    """BYOL learner around a backbone `net`; calling it on a batch of images (B, 3, H, W) returns the
    symmetrised loss (a scalar). The target encoder is a copy of the online encoder made on first use,
    updated only by update_moving_average() (never by gradients)."""

    def __init__(self, net, image_size, hidden_layer=-2, projection_size=256, projection_hidden_size=4096,
                 augment_fn=None, augment_fn2=None, moving_average_decay=0.99, use_momentum=True):
        super().__init__()
        self.net = net
        self.augment1 = default(augment_fn, default_augmentation)
        self.augment2 = default(augment_fn2, self.augment1)
        self.online_encoder = NetWrapper(net, projection_size, projection_hidden_size, layer=hidden_layer)
        self.use_momentum = use_momentum
        self.target_encoder = None
        self.target_ema_updater = EMA(moving_average_decay)
        self.online_predictor = MLP(projection_size, projection_size, projection_hidden_size)

        device = next(net.parameters()).device
        self.to(device)
        # one dummy step builds the lazily created projector (and the target copy)
        self.forward(torch.randn(2, 3, image_size, image_size, device=device))

    def _get_target_encoder(self):
        """The target network: a copy of the online encoder made on first use, never trained by gradients."""
        if self.target_encoder is None:
            # BEGIN SOLUTION 2.3
            target_encoder = copy.deepcopy(self.online_encoder)
            set_requires_grad(target_encoder, False)
            self.target_encoder = target_encoder
            # END SOLUTION
        return self.target_encoder

    def reset_moving_average(self):
        del self.target_encoder
        self.target_encoder = None

    def update_moving_average(self):
        assert self.use_momentum, "you do not need to update the moving average, since the target is the online encoder"
        assert self.target_encoder is not None, "the target encoder has not been created yet"
        update_moving_average(self.target_ema_updater, self.target_encoder, self.online_encoder)

    def forward(self, x, return_embedding=False, return_projection=True):
        assert not (self.training and x.shape[0] == 1), "batch norm needs more than one sample per batch in training"
        if return_embedding:
            return self.online_encoder(x, return_projection=return_projection)

        image_one, image_two = self.augment1(x), self.augment2(x)
        online_proj_one, _ = self.online_encoder(image_one)
        online_proj_two, _ = self.online_encoder(image_two)
        online_pred_one = self.online_predictor(online_proj_one)
        online_pred_two = self.online_predictor(online_proj_two)

        # BEGIN SOLUTION 2.3
        with torch.no_grad():
            target_encoder = self._get_target_encoder() if self.use_momentum else self.online_encoder
            target_proj_one, _ = target_encoder(image_one)
            target_proj_two, _ = target_encoder(image_two)
            target_proj_one.detach_()
            target_proj_two.detach_()

        loss_one = loss_fn(online_pred_one, target_proj_two.detach())
        loss_two = loss_fn(online_pred_two, target_proj_one.detach())
        loss = loss_one + loss_two
        # END SOLUTION
        return loss.mean()
