"""Single-view to 3D (Q2): a ResNet-18 image encoder (given) and three decoders from its (B, 512)
feature to a voxel grid, a point cloud or a deformed ico-sphere mesh.

train_model.py / eval_model.py of the course call `SingleViewto3D(args)` and `model(images, args)`,
with args.type in {"vox", "point", "mesh"}. With args.load_feat the input is already the (B, 512)
feature and the encoder is not built. lite3d stands for pytorch3d (`from lite3d import ico_sphere`).
"""
import time

import torch
import torch.nn as nn
from lite3d import Meshes, ico_sphere


class SingleViewto3D(nn.Module):
    def __init__(self, args):
        super(SingleViewto3D, self).__init__()
        self.device = args.device
        if not args.load_feat:
            from torchvision import models as torchvision_models
            from torchvision import transforms
            vision_model = torchvision_models.__dict__[args.arch](pretrained=True)
            self.encoder = torch.nn.Sequential(*(list(vision_model.children())[:-1]))
            self.normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])

        # define decoder
        if args.type == "vox":
            # Input: b x 512
            # Output: b x 32 x 32 x 32 occupancy probabilities in [0, 1] (eval_model.py runs marching
            # cubes at 0.5 on them)
            # BEGIN SOLUTION 2.1.1
            self.decoder = nn.Sequential(
                nn.Linear(512, 64 * 4 * 4 * 4), nn.ReLU(),
                nn.Unflatten(1, (64, 4, 4, 4)),                                   # b x 64 x 4^3
                nn.ConvTranspose3d(64, 32, 4, stride=2, padding=1), nn.ReLU(),    # b x 32 x 8^3
                nn.ConvTranspose3d(32, 16, 4, stride=2, padding=1), nn.ReLU(),    # b x 16 x 16^3
                nn.ConvTranspose3d(16, 8, 4, stride=2, padding=1), nn.ReLU(),     # b x 8 x 32^3
                nn.Conv3d(8, 1, 1),                                               # b x 1 x 32^3
            )
            # END SOLUTION
        elif args.type == "point":
            # Input: b x 512
            # Output: b x args.n_points x 3
            self.n_point = args.n_points
            # BEGIN SOLUTION 2.2.1
            self.decoder = nn.Sequential(
                nn.Linear(512, 512), nn.ReLU(),
                nn.Linear(512, 1024), nn.ReLU(),
                nn.Linear(1024, self.n_point * 3), nn.Tanh(),                     # coordinates in [-1, 1]
            )
            # END SOLUTION
        elif args.type == "mesh":
            # Input: b x 512
            # Output: b x mesh_pred.verts_packed().shape[0] x 3 per-vertex offsets
            # try different mesh initializations
            mesh_pred = ico_sphere(4, self.device)
            self.mesh_pred = Meshes(mesh_pred.verts_list() * args.batch_size, mesh_pred.faces_list() * args.batch_size)
            # BEGIN SOLUTION 2.3.1
            self.n_verts = mesh_pred.verts_packed().shape[0]
            self.decoder = nn.Sequential(
                nn.Linear(512, 512), nn.ReLU(),
                nn.Linear(512, 1024), nn.ReLU(),
                nn.Linear(1024, self.n_verts * 3), nn.Tanh(),                     # offsets in [-1, 1]
            )
            # END SOLUTION

    def forward(self, images, args):
        results = dict()

        total_loss = 0.0
        start_time = time.time()

        B = images.shape[0]

        if not args.load_feat:
            images_normalize = self.normalize(images.permute(0, 3, 1, 2))
            encoded_feat = self.encoder(images_normalize).squeeze(-1).squeeze(-1)  # b x 512
        else:
            encoded_feat = images  # with args.load_feat the input is the pretrained ResNet-18 feature, b x 512

        # call decoder
        if args.type == "vox":
            # BEGIN SOLUTION 2.1.1
            voxels_pred = torch.sigmoid(self.decoder(encoded_feat)).squeeze(1)  # b x 32 x 32 x 32
            # END SOLUTION
            return voxels_pred

        elif args.type == "point":
            # BEGIN SOLUTION 2.2.1
            pointclouds_pred = self.decoder(encoded_feat).reshape(B, self.n_point, 3)  # b x n_points x 3
            # END SOLUTION
            return pointclouds_pred

        elif args.type == "mesh":
            # BEGIN SOLUTION 2.3.1
            deform_vertices_pred = self.decoder(encoded_feat).reshape(B, self.n_verts, 3)  # b x V x 3
            # END SOLUTION
            mesh_pred = self.mesh_pred.offset_verts(deform_vertices_pred.reshape([-1, 3]))
            return mesh_pred
